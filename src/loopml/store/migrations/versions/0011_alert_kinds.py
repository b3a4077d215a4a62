"""alerts.kind holds 128 characters: 'rule:' and a rule's name of up to 64

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=64), type_=sa.String(length=128))


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.alter_column("kind", existing_type=sa.String(length=128), type_=sa.String(length=64))
