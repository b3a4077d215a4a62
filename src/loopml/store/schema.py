"""Tables of the metadata store. Alembic migrations in migrations/ build exactly this schema.

Times are seconds since the epoch (float); JSON values are stored as text.
"""

from __future__ import annotations

import sqlalchemy as sa

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)

ID = sa.String(32)
KEY = sa.String(255)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", KEY, nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

environments = sa.Table(
    "environments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("data", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("parent_id", ID, sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("name", KEY, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.Double, nullable=False),
    sa.Column("end_time", sa.Double, nullable=True),
    sa.Column("heartbeat_at", sa.Double, nullable=False),
    sa.Column("seed", sa.BigInteger, nullable=True),
    sa.Column("git_commit", sa.String(64), nullable=True),
    sa.Column("git_dirty", sa.Boolean, nullable=True),
    sa.Column("host", KEY, nullable=False),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("user_name", KEY, nullable=False),
    sa.Column("command", sa.Text, nullable=False),
    sa.Column("python_version", sa.String(32), nullable=False),
    sa.Column("environment_id", sa.String(64), sa.ForeignKey("environments.id"), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Index(None, "experiment_id", "start_time"),
    sa.Index(None, "status"),
    sa.Index(None, "parent_id"),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("value_type", sa.String(8), nullable=False),
    sa.Column("value_num", sa.Double, nullable=True),
    sa.Index(None, "key", "value_num"),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("key", KEY, nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Index(None, "run_id", "key", "step"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.Double, nullable=False),
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("count", sa.BigInteger, nullable=False),
    sa.Index(None, "key", "value"),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), primary_key=True),
    sa.Column("direction", sa.String(8), primary_key=True),
    sa.Column("name", sa.String(512), primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("source", sa.Text, nullable=True),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Index(None, "digest"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", KEY, nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("dataset_id", ID, sa.ForeignKey("datasets.id"), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("schema", sa.Text, nullable=False),
    sa.Column("profile_digest", sa.String(64), nullable=False),
    sa.Column("time_column", KEY, nullable=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("parent_id", ID, sa.ForeignKey("snapshots.id"), nullable=True),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("created_by", KEY, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.UniqueConstraint("dataset_id", "digest"),
    sa.Index(None, "dataset_id", "created_at"),
)

step_cache = sa.Table(
    "step_cache",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("step", KEY, nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

models = sa.Table(
    "models",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("name", KEY, nullable=False, unique=True),
    sa.Column("created_at", sa.Double, nullable=False),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=True),
    sa.Column("flavor", sa.String(32), nullable=False),
    sa.Column("info", sa.Text, nullable=False),
    sa.Column("description", sa.Text, nullable=True),
    sa.Column("card", sa.Text, nullable=True),
    sa.Column("created_by", KEY, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("alias", KEY, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

registry_events = sa.Table(
    "registry_events",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("sequence", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("alias", KEY, nullable=True),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("actor", KEY, nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("at", sa.Double, nullable=False),
)

deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("endpoint", KEY, primary_key=True),
    sa.Column("model_id", ID, sa.ForeignKey("models.id"), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("updated_by", KEY, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
)

alerts = sa.Table(
    "alerts",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("endpoint", KEY, nullable=False, index=True),
    sa.Column("kind", sa.String(128), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", sa.Text, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("resolved_at", sa.Double, nullable=True),
)

model_references = sa.Table(
    "model_references",
    metadata,
    sa.Column("model_id", ID, sa.ForeignKey("models.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
)

monitor_windows = sa.Table(
    "monitor_windows",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("endpoint", KEY, nullable=False),
    sa.Column("start", sa.Double, nullable=False),
    sa.Column("end", sa.Double, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("label", KEY, nullable=True),
    sa.Column("versions", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("message", sa.Text, nullable=True),
    sa.Column("report_digest", sa.String(64), nullable=True),
    sa.Index(None, "endpoint", "end"),
)

monitor_points = sa.Table(
    "monitor_points",
    metadata,
    sa.Column("window_id", ID, sa.ForeignKey("monitor_windows.id"), primary_key=True),
    sa.Column("metric", sa.String(64), primary_key=True),
    sa.Column("key", KEY, primary_key=True),
    sa.Column("endpoint", KEY, nullable=False),
    sa.Column("end", sa.Double, nullable=False),
    sa.Column("value", sa.Double, nullable=True),
    sa.Column("low", sa.Double, nullable=True),
    sa.Column("high", sa.Double, nullable=True),
    sa.Index(None, "endpoint", "metric", "end"),
)

loop_decisions = sa.Table(
    "loop_decisions",
    metadata,
    sa.Column("id", ID, primary_key=True),
    sa.Column("endpoint", KEY, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("as_of", sa.Double, nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Index(None, "endpoint", "at"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", KEY, primary_key=True),
    sa.Column("holder", KEY, nullable=False),
    sa.Column("term", sa.BigInteger, nullable=False),
    sa.Column("acquired_at", sa.Double, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
)

refusals = sa.Table(
    "refusals",
    metadata,
    sa.Column("endpoint", KEY, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("instead", sa.Integer, nullable=True),
    sa.Column("failures", sa.Integer, nullable=False),
    sa.Column("retry_at", sa.Double, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("name", KEY, nullable=False, unique=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("secret_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", KEY, nullable=False),
    sa.Column("expires_at", sa.Double, nullable=True),
    sa.Column("revoked_at", sa.Double, nullable=True),
)

applied_requests = sa.Table(
    "applied_requests",
    metadata,
    sa.Column("key", KEY, primary_key=True),
    sa.Column("operation", KEY, nullable=False),
    sa.Column("result", sa.Text, nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Index(None, "at"),
)

# Models logged with MLflow's client (mlflow.<flavor>.log_model): a named folder of a run's
# output artifacts, with the status, tags and params MLflow keeps for it.
logged_models = sa.Table(
    "logged_models",
    metadata,
    sa.Column("id", KEY, primary_key=True),
    sa.Column("experiment_id", ID, sa.ForeignKey("experiments.id"), nullable=False),
    sa.Column("run_id", ID, sa.ForeignKey("runs.id"), nullable=False),
    sa.Column("name", KEY, nullable=False),
    sa.Column("model_type", KEY, nullable=True),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("tags", sa.Text, nullable=False),
    sa.Column("params", sa.Text, nullable=False),
    sa.Index(None, "run_id"),
    sa.Index(None, "experiment_id", "name"),
)
