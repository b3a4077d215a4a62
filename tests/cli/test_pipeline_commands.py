"""`loopml run`: run a pipeline from its module, with parameters, JSON, cache and resume."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

import loopml

PROJECT = textwrap.dedent(
    """
    import os
    import pandas as pd
    from loopml import Pipeline, step

    def raw(rows: int = 5) -> pd.DataFrame:
        return pd.DataFrame({"x": range(rows)})

    def total(raw: pd.DataFrame, scale: float = 1.0) -> float:
        if os.environ.get("BREAK_TOTAL"):
            raise RuntimeError("total is broken today")
        return float(raw.x.sum() * scale)

    train = Pipeline([raw, total], name="train")
    not_a_pipeline = 3
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "project_steps.py").write_text(PROJECT)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("project_steps", None)


def test_run_prints_each_step_and_the_cache(cli, project: Path) -> None:
    first = cli("run", "project_steps:train", "--param", "scale=2")
    assert first.code == 0, first.err
    assert "total" in first.out and "ran" in first.out
    assert "0 of 2 steps from cache" in first.out
    second = cli("run", "project_steps:train", "-p", "scale=2", "--json")
    summary = json.loads(second.out)
    assert summary["cached"] == ["raw", "total"]
    assert summary["params"] == {"rows": 5, "scale": 2.0}
    assert loopml.get_run(summary["run_id"]).tags["loopml.pipeline"] == "project_steps:train"


def test_no_cache_reruns_everything(cli, project: Path) -> None:
    cli("run", "project_steps:train")
    result = json.loads(cli("run", "project_steps:train", "--no-cache", "--json").out)
    assert [s["status"] for s in result["steps"]] == ["ran", "ran"]


def test_a_failed_run_resumes_after_the_fix(
    cli, one_line_error, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BREAK_TOTAL", "1")
    failed = cli("run", "project_steps:train", "-p", "rows=3")
    assert failed.code == 1
    assert "Error: Step 'total'" in failed.err and "total is broken today" in failed.err
    assert "failed" in failed.out and "Traceback" not in failed.err
    run_id = failed.err.split("loopml run resume ")[1].split("'")[0]
    monkeypatch.delenv("BREAK_TOTAL")
    resumed = json.loads(cli("run", "resume", run_id, "--json").out)
    assert [s["status"] for s in resumed["steps"]] == ["reused", "ran"]
    assert resumed["params"]["rows"] == 3
    again = cli("run", "resume", resumed["run_id"])
    one_line_error(again, 2, "is finished; only failed or killed")


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["project_steps:train", "-p", "scale=lots"], 2, "'scale' must be float"),
        (["project_steps:train", "-p", "scael=2"], 2, "Did you mean 'scale'?"),
        (["project_steps:train", "-p", "scale"], 2, "name=value"),
        (["project_steps:nothing"], 2, "has no 'nothing'. Pipelines it defines: train"),
        (["project_steps:not_a_pipeline"], 2, "is a int, not a Pipeline"),
        (["no_such_module:train"], 2, "no module named 'no_such_module'"),
        (["project_steps"], 2, "module:attribute"),
        (["project_steps:train", "extra"], 2, "Unexpected argument 'extra'"),
        (["project_steps:train", "--executor", "threads"], 2, "Unknown executor 'threads'"),
        (["resume"], 2, "Name the run to resume"),
        (["resume", "ffff"], 2, "ffff"),
    ],
)
def test_bad_input_is_one_line(cli, one_line_error, project: Path, args, code, fragment) -> None:
    one_line_error(cli("run", *args), code, fragment)


def test_a_run_started_from_python_resumes_from_python(cli, one_line_error, project) -> None:
    from loopml.pipeline import Pipeline

    def broken() -> int:
        raise ValueError("no")

    with pytest.raises(loopml.LoopmlError) as caught:
        Pipeline([broken]).run()
    one_line_error(cli("run", "resume", caught.value.run_id), 2, "pipeline.resume(")
