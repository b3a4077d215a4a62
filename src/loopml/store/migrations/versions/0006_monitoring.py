"""reference profiles of model versions, monitoring windows and their time series, and the
decisions of the retraining loop

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_references",
        sa.Column("model_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_model_references_model_id_models")
        ),
        sa.PrimaryKeyConstraint("model_id", "version", name=op.f("pk_model_references")),
    )
    op.create_table(
        "monitor_windows",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=255), nullable=False),
        sa.Column("start", sa.Double(), nullable=False),
        sa.Column("end", sa.Double(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=True),
        sa.Column("versions", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("report_digest", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitor_windows")),
    )
    op.create_index(op.f("ix_monitor_windows_endpoint_end"), "monitor_windows", ["endpoint", "end"])
    op.create_table(
        "monitor_points",
        sa.Column("window_id", sa.String(length=32), nullable=False),
        sa.Column("metric", sa.String(length=64), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("endpoint", sa.String(length=255), nullable=False),
        sa.Column("end", sa.Double(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("low", sa.Double(), nullable=True),
        sa.Column("high", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["monitor_windows.id"],
            name=op.f("fk_monitor_points_window_id_monitor_windows"),
        ),
        sa.PrimaryKeyConstraint("window_id", "metric", "key", name=op.f("pk_monitor_points")),
    )
    op.create_index(
        op.f("ix_monitor_points_endpoint_metric_end"),
        "monitor_points",
        ["endpoint", "metric", "end"],
    )

    op.create_table(
        "loop_decisions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("endpoint", sa.String(length=255), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("as_of", sa.Double(), nullable=True),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loop_decisions")),
    )
    op.create_index(op.f("ix_loop_decisions_endpoint_at"), "loop_decisions", ["endpoint", "at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_loop_decisions_endpoint_at"), table_name="loop_decisions")
    op.drop_table("loop_decisions")
    op.drop_index(op.f("ix_monitor_points_endpoint_metric_end"), table_name="monitor_points")
    op.drop_table("monitor_points")
    op.drop_index(op.f("ix_monitor_windows_endpoint_end"), table_name="monitor_windows")
    op.drop_table("monitor_windows")
    op.drop_table("model_references")
