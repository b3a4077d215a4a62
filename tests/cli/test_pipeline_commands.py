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
    from loopml import Pipeline, StepContext, step

    def raw(rows: int = 5) -> pd.DataFrame:
        return pd.DataFrame({"x": range(rows)})

    def total(raw: pd.DataFrame, context: StepContext, scale: float = 1.0) -> float:
        if os.environ.get("BREAK_TOTAL"):
            raise RuntimeError("total is broken today")
        value = float(raw.x.sum() * scale)
        context.log_metric("closeness", -abs(value - 25.0))
        return value

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


def test_sweep_prints_the_best_trial_and_a_command_that_reruns_it(cli, project: Path) -> None:
    (project / "space.yaml").write_text("scale: {type: float, low: 0.5, high: 4}\n")
    swept = cli(
        "sweep",
        "project_steps:train",
        "--space",
        "space.yaml",
        "--metric",
        "closeness",
        "--trials",
        "8",
        "--parallel",
        "2",
        "--seed",
        "1",
    )
    assert swept.code == 0, swept.err
    assert "8 complete, 0 pruned, 0 failed" in swept.out
    command = swept.out.split("Run it again: ")[1].strip()
    assert command.startswith("loopml run project_steps:train --param scale=")
    best = float(swept.out.split("closeness = ")[1].split()[0])
    rerun = json.loads(cli(*command.split()[1:], "--json").out)
    assert rerun["status"] == "finished"
    assert loopml.get_run(rerun["run_id"]).metrics["closeness"] == pytest.approx(best, rel=1e-5)

    summary = json.loads(
        cli(
            "sweep",
            "project_steps:train",
            "--space",
            "space.yaml",
            "--metric",
            "closeness",
            "--trials",
            "3",
            "--json",
        ).out
    )
    assert summary["states"]["complete"] == 3 and summary["best"]["run_id"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--space", "missing.yaml", "--metric", "m"], "Cannot read the search space"),
        (["--space", "bad.yaml", "--metric", "m"], "low (4.0) must be below high (1.0)"),
        (["--space", "space.yaml", "--metric", "m", "--direction", "up"], "max or min"),
        (["--space", "space.yaml", "--metric", "m", "--trials", "0"], "at least 1"),
        (["--space", "space.yaml", "--metric", "m", "-p", "scale=2"], "both fixed"),
    ],
)
def test_sweep_bad_input_is_one_line(cli, one_line_error, project: Path, args, fragment) -> None:
    (project / "space.yaml").write_text("scale: {type: float, low: 0.5, high: 4}\n")
    (project / "bad.yaml").write_text("scale: {type: float, low: 4, high: 1}\n")
    one_line_error(cli("sweep", "project_steps:train", *args), 2, fragment)


def test_a_sweep_with_no_complete_trial_fails(cli, one_line_error, project: Path) -> None:
    (project / "space.yaml").write_text("scale: {type: float, low: 0.5, high: 4}\n")
    result = cli(
        "sweep",
        "project_steps:train",
        "--space",
        "space.yaml",
        "--metric",
        "auc",
        "--trials",
        "2",
    )
    assert result.code == 1
    assert "No trial of sweep run" in result.err and "logged no metric 'auc'" in result.err
