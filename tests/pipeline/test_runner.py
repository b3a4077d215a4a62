"""Running pipelines: tracked runs, lineage, content-keyed caching, failures, retries, resume."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

import loopml
from loopml.data.snapshots import Snapshot
from loopml.errors import ParameterError, StepFailedError
from loopml.pipeline import Pipeline, StepContext, step

CALLS: list[str] = []


def raw(rows: int = 10) -> pd.DataFrame:
    CALLS.append("raw")
    return pd.DataFrame({"x": range(rows)})


def features(raw: pd.DataFrame) -> pd.DataFrame:
    CALLS.append("features")
    return raw.assign(y=raw.x * 2)


def model(features: pd.DataFrame, context: StepContext, alpha: float = 0.5) -> float:
    CALLS.append("model")
    context.log_metric("val_score", float(features.y.mean()))
    return float(features.y.mean() * alpha)


PIPELINE = Pipeline([raw, features, model], name="train")


@pytest.fixture(autouse=True)
def no_calls() -> None:
    CALLS.clear()


def statuses(result) -> dict[str, str]:
    return {report.name: report.status for report in result.steps}


def test_a_pipeline_run_is_a_tracked_run_with_a_child_per_step(workspace) -> None:
    result = PIPELINE.run(params={"alpha": 2.0}, seed=7)
    assert result["model"] == 18.0
    run = loopml.get_run(result.run_id)
    assert run.status == "finished" and run.seed == 7
    assert run.params == {"rows": 10, "alpha": 2.0}
    assert run.tags["loopml.kind"] == "pipeline"
    assert run.metrics["val_score"] == 9.0
    children = loopml.child_runs(result.run_id)
    assert [c.name for c in children] == ["raw", "features", "model"]
    assert all(c.status == "finished" for c in children)
    assert children[2].metrics["val_score"] == 9.0
    stored = loopml.load_artifact(children[1].id, "features")
    pd.testing.assert_frame_equal(stored, features(raw()))


def test_lineage_links_a_snapshot_to_step_outputs_to_the_model(sqlite_workspace) -> None:
    snapshot = loopml.data.add("numbers", pd.DataFrame({"x": range(20)}))

    def load(numbers: Snapshot) -> pd.DataFrame:
        return numbers.to_pandas()

    def total(load: pd.DataFrame) -> int:
        return int(load.x.sum())

    result = Pipeline([load, total], params={"numbers": "numbers"}).run()
    assert result["total"] == 190
    readers = loopml.lineage(snapshot.digest)["read_by"]
    load_run = next(c for c in loopml.child_runs(result.run_id) if c.name == "load")
    assert {r.run_id for r in readers} == {result.run_id, load_run.id}
    frame_digest = result.outputs["load"]
    assert [r.run_id for r in loopml.lineage(frame_digest)["written_by"]] == [load_run.id]
    total_run = loopml.lineage(frame_digest)["read_by"][0].run_id
    assert loopml.lineage(result.outputs["total"])["written_by"][0].run_id == total_run


def test_a_second_run_takes_every_unchanged_step_from_the_cache(workspace) -> None:
    first = PIPELINE.run()
    second = PIPELINE.run()
    assert CALLS == ["raw", "features", "model"]
    assert second.cached == ["raw", "features", "model"]
    assert second["model"] == first["model"]
    child = loopml.child_runs(second.run_id)[0]
    assert child.tags["loopml.cache"] == "hit"
    assert child.tags["loopml.cached_from"] == first.step("raw").run_id


def test_a_changed_parameter_reruns_only_the_steps_that_read_it(sqlite_workspace) -> None:
    PIPELINE.run()
    CALLS.clear()
    result = PIPELINE.run(params={"alpha": 1.0})
    assert statuses(result) == {"raw": "cached", "features": "cached", "model": "ran"}
    assert CALLS == ["model"]


def test_equal_content_from_a_rerun_step_still_hits_downstream(sqlite_workspace) -> None:
    PIPELINE.run()
    CALLS.clear()
    result = PIPELINE.run(cache=False)
    assert statuses(result) == {"raw": "ran", "features": "ran", "model": "ran"}
    assert PIPELINE.run().cached == ["raw", "features", "model"]


def test_changed_code_misses_the_cache(sqlite_workspace) -> None:
    PIPELINE.run()

    def model(features: pd.DataFrame, context: StepContext, alpha: float = 0.5) -> float:
        return float(features.y.mean() * alpha) + 1

    result = Pipeline([raw, features, model]).run()
    assert statuses(result)["model"] == "ran"
    assert result["model"] == 5.5


def test_new_snapshot_data_always_misses(sqlite_workspace) -> None:
    loopml.data.add("numbers", pd.DataFrame({"x": [1, 2]}))

    def total(numbers: Snapshot) -> int:
        return int(numbers.to_pandas().x.sum())

    pipeline = Pipeline([total], params={"numbers": "numbers"})
    assert pipeline.run()["total"] == 3
    assert pipeline.run().cached == ["total"]
    loopml.data.add("numbers", pd.DataFrame({"x": [1, 2, 3]}))  # same name, new content
    result = pipeline.run()
    assert result.cached == [] and result["total"] == 6


def test_a_file_parameter_is_keyed_by_its_content(sqlite_workspace, tmp_path: Path) -> None:
    source = tmp_path / "rows.txt"
    source.write_text("1\n2\n")

    def count(path: Path) -> int:
        return len(path.read_text().split())

    pipeline = Pipeline([count], params={"path": str(source)})
    assert pipeline.run()["count"] == 2
    assert pipeline.run().cached == ["count"]
    source.write_text("1\n2\n3\n")
    assert pipeline.run()["count"] == 3


def test_a_step_can_opt_out_of_the_cache(sqlite_workspace) -> None:
    uncached = step(features, cache=False)
    pipeline = Pipeline([raw, uncached, model])
    pipeline.run()
    CALLS.clear()
    result = pipeline.run()
    assert statuses(result) == {"raw": "cached", "features": "ran", "model": "cached"}


def test_outputs_removed_from_the_store_are_recomputed(sqlite_workspace) -> None:
    first = PIPELINE.run()
    path = Path(sqlite_workspace.artifacts.path_of(first.outputs["features"]))
    path.unlink()
    CALLS.clear()
    result = PIPELINE.run()
    assert statuses(result)["features"] == "ran"
    assert path.exists()


def test_a_failing_step_fails_the_run_with_its_traceback(workspace) -> None:
    def broken(features: pd.DataFrame) -> float:
        raise ValueError("no signal in these features")

    with pytest.raises(StepFailedError) as caught:
        Pipeline([raw, features, broken], name="broken").run()
    error = caught.value
    assert "ValueError: no signal in these features" in str(error)
    assert f"{__file__}:{broken.__code__.co_firstlineno}" in str(error)
    assert f"loopml run resume {error.run_id}" in str(error)
    run = loopml.get_run(error.run_id)
    assert run.status == "failed"
    assert 'raise ValueError("no signal in these features")' in run.error
    failed = next(c for c in loopml.child_runs(error.run_id) if c.name == "broken")
    assert failed.status == "failed" and "Traceback" in failed.error
    assert {r.name: r.status for r in error.result.steps}["broken"] == "failed"


def test_steps_after_a_failure_are_skipped(sqlite_workspace) -> None:
    def broken(raw: pd.DataFrame) -> pd.DataFrame:
        raise RuntimeError("boom")

    def after(broken: pd.DataFrame) -> int:
        return 1

    with pytest.raises(StepFailedError) as caught:
        Pipeline([raw, broken, after]).run()
    assert statuses(caught.value.result) == {"raw": "ran", "broken": "failed", "after": "skipped"}
    assert [c.name for c in loopml.child_runs(caught.value.run_id)] == ["raw", "broken"]


def test_retries_wait_and_succeed(sqlite_workspace) -> None:
    attempts: list[int] = []

    @step(retries=2, backoff=0.01)
    def flaky(raw: pd.DataFrame, context: StepContext) -> int:
        attempts.append(context.attempt)
        if context.attempt < 3:
            raise ConnectionError("try again")
        return len(raw)

    result = Pipeline([raw, flaky]).run()
    assert result["flaky"] == 10 and attempts == [1, 2, 3]
    assert result.step("flaky").attempts == 3
    assert loopml.get_run(result.step("flaky").run_id).tags["loopml.attempts"] == "3"


def test_retries_run_out(sqlite_workspace) -> None:
    @step(retries=1, backoff=0)
    def hopeless(raw: pd.DataFrame) -> int:
        raise ConnectionError("down")

    with pytest.raises(StepFailedError, match="ConnectionError: down") as caught:
        Pipeline([raw, hopeless]).run()
    assert caught.value.result.step("hopeless").attempts == 2


def test_a_wrong_return_type_fails_the_step(sqlite_workspace) -> None:
    def counted(raw: pd.DataFrame) -> int:
        return "ten"

    with pytest.raises(StepFailedError, match="declares it returns counted: int, but returned a "):
        Pipeline([raw, counted]).run()


def test_a_wrong_number_of_outputs_fails_the_step(sqlite_workspace) -> None:
    @step(outputs=("a", "b"))
    def pair(raw: pd.DataFrame):
        return raw

    with pytest.raises(StepFailedError, match="must return a tuple of 2 values"):
        Pipeline([raw, pair]).run()


def test_an_unpicklable_output_is_explained(sqlite_workspace) -> None:
    def handle(raw: pd.DataFrame):
        return (value for value in raw.x)

    with pytest.raises(StepFailedError, match="cannot be pickled"):
        Pipeline([raw, handle]).run()


def test_resume_reruns_from_the_failed_step(sqlite_workspace) -> None:
    fixed = {"done": False}

    def fragile(features: pd.DataFrame) -> float:
        if not fixed["done"]:
            raise RuntimeError("not yet")
        return float(features.y.sum())

    pipeline = Pipeline([raw, step(features, cache=False), fragile])
    with pytest.raises(StepFailedError) as caught:
        pipeline.run(params={"rows": 4})
    fixed["done"] = True
    CALLS.clear()
    result = pipeline.resume(caught.value.run_id)
    assert statuses(result) == {"raw": "reused", "features": "reused", "fragile": "ran"}
    assert CALLS == [] and result["fragile"] == 12.0
    assert result.params["rows"] == 4
    assert loopml.get_run(result.run_id).tags["loopml.resumed_from"] == caught.value.run_id


def test_only_failed_or_killed_pipeline_runs_resume(sqlite_workspace) -> None:
    result = PIPELINE.run()
    with pytest.raises(loopml.LoopmlError, match="is finished; only failed or killed"):
        PIPELINE.resume(result.run_id)
    with loopml.start_run() as plain:
        pass
    with pytest.raises(loopml.LoopmlError, match="not a pipeline run"):
        PIPELINE.resume(plain.id)


def test_parameters_are_checked(sqlite_workspace) -> None:
    with pytest.raises(ParameterError, match="takes no parameter 'alpah'. Did you mean 'alpha'"):
        PIPELINE.run(params={"alpah": 1.0})
    with pytest.raises(ParameterError, match="'rows' of pipeline 'train' must be int"):
        PIPELINE.run(params={"rows": "ten"})
    required = Pipeline([raw], params={"rows": ...})
    with pytest.raises(ParameterError, match="needs the parameter 'rows'"):
        required.run()


def test_an_unknown_snapshot_parameter_is_reported(sqlite_workspace) -> None:
    def total(numbers: Snapshot) -> int:
        return 0

    with pytest.raises(loopml.LoopmlError, match="numbers"):
        Pipeline([total], params={"numbers": "numbers"}).run()


def test_the_result_explains_unknown_outputs(sqlite_workspace) -> None:
    result = PIPELINE.run()
    with pytest.raises(loopml.LoopmlError, match="has no output 'modle'"):
        result["modle"]
    assert result.to_dict()["steps"][0]["status"] == "ran"
    assert pickle.loads(sqlite_workspace.artifacts.get_bytes(result.outputs["model"])) == 4.5
