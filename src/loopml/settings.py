"""Typed settings: environment variables ``LOOPML_*``, then ``loopml.toml``, then defaults.

Settings are read when first needed, never at import. Relative paths are resolved against the
folder of the ``loopml.toml`` that set them, or against the working directory for values from
the environment and for defaults. Every field is documented in docs/configuration.md.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from loopml.errors import ConfigError

CONFIG_FILENAME = "loopml.toml"
ENV_PREFIX = "LOOPML_"
CONFIG_ENV = "LOOPML_CONFIG"


class Settings(BaseModel):
    """Resolved settings of one workspace. Build with :func:`load_settings`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    home: Path = Field(
        Path(".loopml"),
        description="Folder of the local workspace; the default stores live inside it.",
    )
    metadata_url: str = Field(
        "",
        description="SQLAlchemy URL of the metadata store: sqlite:///path or "
        "postgresql+psycopg://user@host:port/db. Empty means the SQLite file "
        "<home>/metadata.db.",
    )
    artifacts_url: str = Field(
        "",
        description="fsspec URL or local path of the artifact store: file://, memory:// or "
        "s3://bucket/prefix. Empty means the folder <home>/artifacts.",
    )
    events_url: str = Field(
        "",
        description="fsspec URL or local path of the event store (the prediction and "
        "feedback logs): a folder, which hosts sharing it write together, or "
        "s3://bucket/prefix. Empty means the folder <home>/events.",
    )
    host_id: str = Field(
        "",
        description="This host's name in the event log's segment names, so that hosts "
        "sharing a log never collide. Empty means the machine's host name.",
    )
    s3_endpoint_url: str = Field(
        "",
        description="Endpoint of an S3-compatible object store (MinIO, Ceph, ...); empty "
        "means AWS. Credentials come from the usual AWS_* variables.",
    )
    server_url: str = Field(
        "",
        description="URL of a loopml server (http://host:5000) to keep metadata through, "
        "instead of opening metadata_url: the SDK and CLI then need no database "
        "credentials, only a token.",
    )
    token: str = Field(
        "",
        repr=False,
        description="Token for server_url, from 'loopml server token create' (keep it out "
        "of loopml.toml files others can read: LOOPML_TOKEN is the usual place).",
    )
    server_retry_seconds: float = Field(
        60.0,
        ge=0,
        description="How long a request to server_url is retried (with backoff) while the "
        "server is unreachable or overloaded, before the call fails.",
    )
    server_max_upload_mb: int = Field(
        5120,
        ge=1,
        description="The largest artifact loopml server takes in one upload, in MB; a larger "
        "one is refused with 413.",
    )
    server_trusted_header: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9-]{1,100}$",
        description="The header in which an authenticating proxy in front of loopml server "
        "names the signed-in user (X-Forwarded-Email for oauth2-proxy); believed only on "
        "requests from server_trusted_proxies. Unset: only tokens say who calls.",
    )
    server_trusted_roles: dict[str, Literal["viewer", "editor", "admin"]] = Field(
        default_factory=dict,
        description="The role of each user the proxy signs in, by name; '*' for everyone "
        "else (without it, other users are refused with 403). JSON in "
        "LOOPML_SERVER_TRUSTED_ROLES.",
    )
    server_trusted_proxies: list[str] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"],
        description="The addresses (or networks, 10.0.0.0/8) whose requests may name a user "
        "in server_trusted_header; comma-separated in LOOPML_SERVER_TRUSTED_PROXIES.",
    )
    protected_aliases: list[str] = Field(
        default_factory=lambda: ["champion"],
        description="Aliases that only an admin's token may move on a loopml server (set, "
        "roll back); comma-separated in LOOPML_PROTECTED_ALIASES.",
    )
    experiment: str = Field(
        "default", min_length=1, description="Experiment of runs started without one."
    )
    metric_flush_interval: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Seconds between background flushes of buffered metric values.",
    )
    metric_buffer_limit: int = Field(
        100_000,
        ge=1,
        description="Buffered metric values per run that trigger a flush in the logging "
        "thread itself.",
    )
    sqlite_busy_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a SQLite writer waits for another process's write to finish "
        "before failing.",
    )
    heartbeat_interval: float = Field(
        30.0, gt=0, description="Seconds between heartbeats of a running run."
    )
    stale_run_timeout: float = Field(
        300.0,
        gt=0,
        description="A running run with no heartbeat for this many seconds is marked killed "
        "when the workspace is next opened.",
    )
    capture_git: bool = Field(
        True, description="Record the git commit and dirty flag of the working directory."
    )
    capture_packages: bool = Field(
        True, description="Record the versions of all installed Python packages."
    )
    events_segment_bytes: int = Field(
        64 * 1024 * 1024,
        ge=4096,
        description="A prediction or feedback log segment is closed, ready to seal into "
        "Parquet, when it reaches this size (or when the hour changes).",
    )
    events_segment_seconds: float = Field(
        60.0,
        gt=0,
        description="A log segment is also closed when it is this many seconds old, so "
        "other hosts of an object-store log see its events soon after it is sealed.",
    )
    events_durable: bool = Field(
        False,
        description="Survive a power loss, not only a killed process: every logged event "
        "is fsynced before the request is answered, and sealed files and folders are "
        "fsynced before a segment is deleted. Costs throughput; see "
        "benchmarks/results/serving.md.",
    )
    events_retention_days: float = Field(
        0.0,
        ge=0,
        description="Sealed log partitions whose hour ended longer ago than this are "
        "deleted by `loopml events compact`; 0 keeps them for ever.",
    )
    serve_max_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="A model server answers 413 to a request body larger than this.",
    )
    serve_max_rows: int = Field(
        100_000, ge=1, description="A model server answers 413 to a request of more rows."
    )
    serve_token_role: Literal["viewer", "editor", "admin"] | None = Field(
        None,
        description="The role a model server's predictions, deployment and model metadata need "
        "of a caller's token, when the workspace has tokens (none: anyone may predict). "
        "/feedback needs an editor's token whenever the workspace has tokens.",
    )
    serve_max_columns: int = Field(
        512,
        ge=1,
        description="A model server answers 422 to a request of more columns (the model's "
        "and any others).",
    )
    serve_extra_columns: Literal["drop", "refuse", "log"] = Field(
        "drop",
        description="What a model server does with request columns the version does not "
        "know (neither a feature nor a column of its contract): drop them before they are "
        "scored or logged, refuse the request with 422, or log them as they come.",
    )
    serve_read_timeout: float = Field(
        30.0,
        gt=0,
        description="A model server answers 408 to a request whose body has not fully "
        "arrived this many seconds after its headers.",
    )
    lease_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a lease of the metadata store lasts without renewal: the "
        "loop's scheduler of an endpoint holds one, and a standby takes over this long "
        "after its holder stops.",
    )
    cpu_hour_price: float = Field(
        0.05,
        ge=0,
        description="The price of one CPU hour, in any currency: monitoring reports the cost "
        "of 1,000 predictions from the CPU time logged with each.",
    )
    executor: str = Field(
        "inline",
        min_length=1,
        description="Where pipeline steps and sweep trials run: inline, process, process:N, "
        "dask (a local cluster) or dask://host:8786.",
    )

    metric_modules: str = Field(
        "",
        description="Comma-separated Python modules imported before a metric is looked up, "
        "so the metrics they register with loopml.register_metric are known to monitors, "
        "gates and servers of this workspace.",
    )

    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    @field_validator("protected_aliases", "server_trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """A list from the environment is comma-separated: 'champion,production'."""
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("server_trusted_roles", mode="before")
    @classmethod
    def _json_object(cls, value: Any) -> Any:
        """A table from the environment is JSON: '{"*": "viewer", "ana@example.com": "admin"}'."""
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                raise ValueError(f"{value!r} is not a JSON object of user to role") from None
        return value

    @model_validator(mode="after")
    def _heartbeats_fit_the_timeout(self) -> Settings:
        if self.stale_run_timeout <= 2 * self.heartbeat_interval:
            raise ValueError(
                f"stale_run_timeout ({self.stale_run_timeout}s) must be more than twice "
                f"heartbeat_interval ({self.heartbeat_interval}s), or live runs would be "
                "marked killed"
            )
        return self

    _config_file: Path | None = PrivateAttr(default=None)

    @property
    def config_file(self) -> Path | None:
        """The loopml.toml these settings were read from, if any."""
        return self._config_file

    def source_of(self, name: str) -> str:
        """Where a field's value came from: 'env', 'file' or 'default'."""
        return self._sources.get(name, "default")


PATH_FIELDS = ("home",)
URL_FIELDS = ("metadata_url", "artifacts_url", "events_url")


def hide_password(url: str) -> str:
    """The URL with any password replaced by ***, for printing."""
    return re.sub(r"(://[^/:@\s]*):[^@/\s]*@", r"\1:***@", url)


def env_name(field: str) -> str:
    """The environment variable that sets a field."""
    return ENV_PREFIX + field.upper()


def load_settings(cwd: str | Path | None = None, **overrides: Any) -> Settings:
    """Read settings from overrides, the environment, loopml.toml and defaults, in that order."""
    base = Path(cwd) if cwd is not None else Path.cwd()
    config_file = find_config_file(base)
    layers: list[tuple[str, dict[str, Any], Path]] = []
    if config_file is not None:
        layers.append(("file", read_config_file(config_file), config_file.parent))
    layers.append(("env", _env_values(), base))
    layers.append(("override", dict(overrides), base))
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    bases: dict[str, Path] = {}
    for source, layer, folder in layers:
        for key, value in layer.items():
            values[key], sources[key], bases[key] = value, source, folder
    settings = _validate(values, config_file)
    settings = _resolve_paths(settings, bases, base)
    settings._sources = sources
    settings._config_file = config_file
    return settings


def find_config_file(start: Path) -> Path | None:
    """$LOOPML_CONFIG, else the nearest loopml.toml in start or its parents."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = (start / explicit).resolve()
        if not path.is_file():
            raise ConfigError(
                f"{CONFIG_ENV} points to '{path}', which is not a file. "
                f"Create it with 'loopml init' or unset {CONFIG_ENV}."
            )
        return path
    for folder in (start.resolve(), *start.resolve().parents):
        candidate = folder / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """The settings table of a loopml.toml file."""
    try:
        with open(path, "rb") as stream:
            data = tomllib.load(stream)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(
            f"{path} is not valid TOML: {error}. Fix the file or delete it."
        ) from None
    except OSError as error:
        raise ConfigError(f"Cannot read {path}: {error.strerror}.") from None
    return data


def _env_values() -> dict[str, str]:
    values = {}
    for name in Settings.model_fields:
        raw = os.environ.get(env_name(name))
        if raw is not None:
            values[name] = raw
    return values


def _validate(values: dict[str, Any], config_file: Path | None) -> Settings:
    try:
        return Settings.model_validate(values)
    except ValidationError as error:
        raise ConfigError(_describe_validation_error(error, config_file)) from None


def _describe_validation_error(error: ValidationError, config_file: Path | None) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] == "extra_forbidden":
            known = ", ".join(Settings.model_fields)
            problems.append(f"unknown setting '{field}' (known settings: {known})")
        else:
            shown = item.get("input")
            problems.append(f"setting '{field}' = {shown!r}: {item['msg']}")
    where = (
        f"{config_file} or the {ENV_PREFIX}* environment"
        if config_file
        else (f"the {ENV_PREFIX}* environment")
    )
    return f"Invalid settings in {where}: " + "; ".join(problems) + "."


def _resolve_paths(settings: Settings, bases: dict[str, Path], cwd: Path) -> Settings:
    home = settings.home
    if not home.is_absolute():
        home = (bases.get("home", cwd) / home).resolve()
    metadata_url = settings.metadata_url or f"sqlite:///{home / 'metadata.db'}"
    metadata_url = _absolute_sqlite_url(metadata_url, bases.get("metadata_url", cwd))
    artifacts_url = settings.artifacts_url or str(home / "artifacts")
    artifacts_url = _absolute_local_url(artifacts_url, bases.get("artifacts_url", cwd))
    events_url = settings.events_url or str(home / "events")
    events_url = _absolute_local_url(events_url, bases.get("events_url", cwd))
    return settings.model_copy(
        update={
            "home": home,
            "metadata_url": metadata_url,
            "artifacts_url": artifacts_url,
            "events_url": events_url,
        }
    )


def _absolute_sqlite_url(url: str, base: Path) -> str:
    prefix, _, rest = url.partition(":///")
    if not prefix.startswith("sqlite") or not rest or rest.startswith("/"):
        return url
    path, query = rest.partition("?")[0], rest.partition("?")[2]
    if path == ":memory:" or path.startswith("file:"):  # in memory, or a SQLite URI
        return url
    resolved = f"{prefix}:///{(base / path).resolve()}"
    return f"{resolved}?{query}" if query else resolved


def _absolute_local_url(url: str, base: Path) -> str:
    if "://" in url:
        return url
    return str((base / url).resolve())
