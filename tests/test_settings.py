"""Settings: environment over loopml.toml over defaults, typed, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from loopml.errors import ConfigError
from loopml.settings import Settings, load_settings


def test_defaults_put_the_workspace_in_dot_loopml(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.home == tmp_path / ".loopml"
    assert settings.metadata_url == f"sqlite:///{tmp_path}/.loopml/metadata.db"
    assert settings.artifacts_url == str(tmp_path / ".loopml" / "artifacts")
    assert settings.metric_flush_interval == 1.0
    assert settings.source_of("home") == "default"
    assert settings.config_file is None


def test_the_file_overrides_defaults_and_the_environment_overrides_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "loopml.toml").write_text('experiment = "from-file"\nmetric_flush_interval = 0.5\n')
    monkeypatch.setenv("LOOPML_METRIC_FLUSH_INTERVAL", "0.25")
    settings = load_settings()
    assert settings.experiment == "from-file" and settings.source_of("experiment") == "file"
    assert (
        settings.metric_flush_interval == 0.25
        and settings.source_of("metric_flush_interval") == "env"
    )
    assert settings.config_file == tmp_path / "loopml.toml"


def test_relative_paths_in_the_file_are_relative_to_the_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "loopml.toml").write_text(
        'home = "state"\nmetadata_url = "sqlite:///db/meta.db"\nartifacts_url = "blobs"\n'
    )
    nested = tmp_path / "src" / "pkg"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)  # found by walking up, paths still relative to the file
    settings = load_settings()
    assert settings.home == tmp_path / "state"
    assert settings.metadata_url == f"sqlite:///{tmp_path}/db/meta.db"
    assert settings.artifacts_url == str(tmp_path / "blobs")


def test_urls_with_schemes_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_METADATA_URL", "postgresql+psycopg://u@127.0.0.1/db")
    monkeypatch.setenv("LOOPML_ARTIFACTS_URL", "s3://bucket/prefix")
    settings = load_settings()
    assert settings.metadata_url == "postgresql+psycopg://u@127.0.0.1/db"
    assert settings.artifacts_url == "s3://bucket/prefix"


def test_loopml_config_names_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "custom.toml").write_text('experiment = "custom"\n')
    monkeypatch.setenv("LOOPML_CONFIG", "custom.toml")
    assert load_settings().experiment == "custom"
    monkeypatch.setenv("LOOPML_CONFIG", "missing.toml")
    with pytest.raises(ConfigError, match="LOOPML_CONFIG points to .*missing.toml"):
        load_settings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metric_flush_interval = -1", "metric_flush_interval.*greater than 0"),
        ('colour = "blue"', "unknown setting 'colour'.*known settings: home"),
        ("experiment = ", "not valid TOML"),
        ("stale_run_timeout = 40", "more than twice heartbeat_interval"),
    ],
)
def test_invalid_files_are_reported_with_the_setting(tmp_path: Path, text: str, message: str):
    (tmp_path / "loopml.toml").write_text(text + "\n")
    with pytest.raises(ConfigError, match=message):
        load_settings()


def test_invalid_environment_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_SQLITE_BUSY_TIMEOUT", "soon")
    with pytest.raises(ConfigError, match="sqlite_busy_timeout.*'soon'"):
        load_settings()


def test_booleans_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPML_CAPTURE_GIT", "false")
    assert load_settings().capture_git is False


def test_every_setting_is_documented() -> None:
    docs = (Path(__file__).parents[1] / "docs" / "configuration.md").read_text()
    for name in Settings.model_fields:
        assert f"`{name}`" in docs, name
        assert f"`LOOPML_{name.upper()}`" in docs, name
