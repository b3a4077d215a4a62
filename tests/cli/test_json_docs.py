"""The JSON shapes in docs/cli.md are the ones the commands print: every command that takes
--json is documented under "JSON output", and each one, run on a small workspace, prints the
top-level type and keys the docs list (parsed from the markdown), no more and no fewer.

The workspace is the loop tests' tiny endpoint (tests/loop/tiny_pipeline.py): a dataset, a
pipeline run, and model "tiny" (champion = version 1) with its reference."""

from __future__ import annotations

import importlib
import json
import re
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import typer.main
from fastapi.testclient import TestClient

import loopml
from loopml.cli.main import app
from loopml.serving import create_app
from loopml.serving.deployments import raise_alert

ROOT = Path(__file__).parents[2]
CLI_DOCS = ROOT / "docs" / "cli.md"
LOOP_TESTS = ROOT / "tests" / "loop"


@dataclass(frozen=True)
class Shape:
    """A documented JSON output: an object, or a list of objects, and its keys."""

    kind: str  # "object" or "list"
    keys: tuple[str, ...]


SAME_AS = re.compile(r"[Tt]he same (?:object|list) as `loopml (.+?) --json`")
KEY_ROW = re.compile(r"^\| `([^`]+)` \|")


def documented_shapes(text: str) -> dict[str, Shape]:
    """Command (e.g. "runs list") → its shape, from the "## JSON output" section: a
    `### \\`loopml COMMAND --json\\`` heading per command, a sentence starting "An object" or
    "A list", and a table with a row per key; or "The same object as `loopml OTHER --json`"."""
    section = text.split("\n## JSON output\n", 1)[1].split("\n## ", 1)[0]
    shapes: dict[str, Shape] = {}
    for chunk in section.split("\n### ")[1:]:
        heading, body = chunk.split("\n", 1)
        command = re.fullmatch(r"`loopml (.+) --json`", heading.strip())
        assert command, f"a heading of 'JSON output' is not `loopml COMMAND --json`: {heading}"
        same = SAME_AS.search(body)
        if same:
            shapes[command[1]] = shapes[same[1]]
            continue
        kind = "list" if body.lstrip().startswith("A list") else "object"
        assert kind == "list" or body.lstrip().startswith("An object"), heading
        keys = tuple(m[1] for line in body.splitlines() if (m := KEY_ROW.match(line)))
        assert keys, f"{heading} lists no keys"
        shapes[command[1]] = Shape(kind, keys)
    return shapes


SHAPES = documented_shapes(CLI_DOCS.read_text(encoding="utf-8"))


def json_commands(group, prefix: str = "") -> list[str]:
    """Every command (e.g. "runs list") that takes --json."""
    found = []
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if hasattr(command, "commands"):
            found += json_commands(command, f"{path} ")
        elif any("--json" in param.opts for param in command.params):
            found.append(path)
    return found


def test_every_command_with_json_output_is_documented() -> None:
    commands = set(json_commands(typer.main.get_command(app)))
    commands |= {"run resume"}  # `loopml run resume RUN_ID` is `loopml run` with `resume`
    assert sorted(SHAPES) == sorted(commands)


# A small workspace, and the arguments of each command on it


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
    """
)
GATE = "target: y\nresamples: 20\nchecks:\n  - {check: metric, metric: roc_auc}\n"
POLICY = """\
retrain:
  pipeline: tiny_pipeline:train
  params: {train_from: $window_start, split_at: $validation_start, data_end: $data_end}
  window: 2 months
  reference: train_rows
  target: y
refit: {enabled: false}
triggers:
  alerts: [drift]
gate: gate.yaml
rollout: {shadow_requests: 4, canary_requests: 4}
"""
TRAIN = ["-p", "split_at=2013-03-01", "-p", "data_end=2013-04-01"]


@dataclass
class Scene:
    """The tiny endpoint in the test's folder, and the cli to run commands with."""

    cli: Callable
    folder: Path
    monkeypatch: pytest.MonkeyPatch
    tiny: object  # the tiny_pipeline module

    def file(self, name: str, frame: pd.DataFrame | None = None, text: str = "") -> Path:
        """Write a Parquet or CSV file of frame, or a text file, in the test's folder."""
        path = self.folder / name
        if frame is None:
            path.write_text(text)
        elif path.suffix == ".csv":
            frame.to_csv(path, index=False)
        else:
            frame.to_parquet(path)
        return path

    def run_ids(self) -> list[str]:
        return [record.id for record in loopml.search_runs()]

    def project(self) -> str:
        """The pipeline project_steps:train (a metric per run; BREAK_TOTAL=1 breaks it)."""
        self.file("project_steps.py", text=PROJECT)
        self.monkeypatch.syspath_prepend(str(self.folder))
        self.monkeypatch.delitem(sys.modules, "project_steps", raising=False)
        return "project_steps:train"

    def version_2(self) -> None:
        """tiny@2, from the champion's own run."""
        run = loopml.models.get_version("tiny@1").run_id
        loopml.models.register("tiny", run=run, card=False)

    def traffic(self, rows: int = 150) -> list[str]:
        """Send rows of the tiny dataset to a server of tiny; the prediction ids."""
        records = self.tiny.rows(seed=1)[["a", "b"]].head(rows).to_dict("records")
        with TestClient(create_app("tiny")) as client:
            answer = client.post("/predict", json={"records": records})
            assert answer.status_code == 200, answer.text
        return [found["id"] for found in answer.json()["predictions"]]


@pytest.fixture
def scene(cli, sqlite_workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Scene:
    monkeypatch.syspath_prepend(str(LOOP_TESTS))
    tiny = importlib.import_module("tiny_pipeline")
    tiny.champion("tiny")
    (tmp_path / "gate.yaml").write_text(GATE)
    (tmp_path / "policy.yaml").write_text(POLICY)
    return Scene(cli, tmp_path, monkeypatch, tiny)


RECIPES: dict[str, Callable[[Scene], list[object]]] = {}


def recipe(command: str) -> Callable:
    """The arguments that run COMMAND (without --json) on the scene, after any set-up."""

    def register(make: Callable[[Scene], list[object]]) -> Callable[[Scene], list[object]]:
        RECIPES[command] = make
        return make

    return register


@recipe("config")
def _config(scene: Scene) -> list[object]:
    return ["config"]


@recipe("runs list")
def _runs_list(scene: Scene) -> list[object]:
    return ["runs", "list"]


@recipe("runs show")
def _runs_show(scene: Scene) -> list[object]:
    return ["runs", "show", scene.run_ids()[0]]


@recipe("runs compare")
def _runs_compare(scene: Scene) -> list[object]:
    return ["runs", "compare", *scene.run_ids()[:2]]


@recipe("experiments list")
def _experiments_list(scene: Scene) -> list[object]:
    return ["experiments", "list"]


@recipe("data add")
def _data_add(scene: Scene) -> list[object]:
    return ["data", "add", "more", scene.file("more.parquet", scene.tiny.rows(seed=1))]


@recipe("data from-log")
def _data_from_log(scene: Scene) -> list[object]:
    ids = scene.traffic(20)
    labels = [{"id": i, "label": True} for i in ids[:10]] + [
        {"id": i, "label": False} for i in ids[10:]
    ]
    with TestClient(create_app("tiny")) as client:
        assert client.post("/feedback", json=labels).json()["accepted"] == 20
    return ["data", "from-log", "tiny", "served", "--target", "y"]


@recipe("data list")
def _data_list(scene: Scene) -> list[object]:
    return ["data", "list"]


@recipe("data show")
def _data_show(scene: Scene) -> list[object]:
    return ["data", "show", "tiny"]


@recipe("data diff")
def _data_diff(scene: Scene) -> list[object]:
    return ["data", "diff", "tiny", scene.file("other.parquet", scene.tiny.rows(seed=1))]


@recipe("data validate")
def _data_validate(scene: Scene) -> list[object]:
    contract = loopml.data.contract_for(loopml.data.get("tiny")).to_yaml()
    return ["data", "validate", "tiny", "--contract", scene.file("contract.yaml", text=contract)]


@recipe("data audit")
def _data_audit(scene: Scene) -> list[object]:
    return ["data", "audit", "tiny", "--target", "y"]


@recipe("run")
def _run(scene: Scene) -> list[object]:
    return ["run", "tiny_pipeline:train", *TRAIN]


@recipe("run resume")
def _run_resume(scene: Scene) -> list[object]:
    pipeline = scene.project()
    scene.monkeypatch.setenv("BREAK_TOTAL", "1")
    failed = scene.cli("run", pipeline)
    assert failed.code == 1, failed.err
    scene.monkeypatch.delenv("BREAK_TOTAL")
    return ["run", "resume", failed.err.split("loopml run resume ")[1].split("'")[0]]


@recipe("sweep")
def _sweep(scene: Scene) -> list[object]:
    space = scene.file("space.yaml", text="scale: {type: float, low: 0.5, high: 4}\n")
    pipeline = scene.project()
    return ["sweep", pipeline, "--space", space, "--metric", "closeness", "--trials", "2"]


@recipe("models register")
def _models_register(scene: Scene) -> list[object]:
    return ["models", "register", "tiny", "--run", loopml.models.get_version("tiny@1").run_id]


@recipe("models reference")
def _models_reference(scene: Scene) -> list[object]:
    rows = scene.file("train.parquet", scene.tiny.rows()[["a", "b", "y"]])
    return ["models", "reference", "tiny@1", rows, "--target", "y"]


@recipe("models list")
def _models_list(scene: Scene) -> list[object]:
    return ["models", "list"]


@recipe("models show")
def _models_show(scene: Scene) -> list[object]:
    return ["models", "show", "tiny@champion"]


@recipe("models alias")
def _models_alias(scene: Scene) -> list[object]:
    return ["models", "alias", "tiny", "challenger", "1"]


@recipe("models promote")
def _models_promote(scene: Scene) -> list[object]:
    scene.version_2()
    return ["models", "promote", "tiny", "2", "--policy", "gate.yaml", "--data", "tiny"]


@recipe("models rollback")
def _models_rollback(scene: Scene) -> list[object]:
    scene.version_2()
    loopml.models.set_alias("tiny", "champion", 2)
    return ["models", "rollback", "tiny"]


@recipe("models history")
def _models_history(scene: Scene) -> list[object]:
    return ["models", "history", "tiny"]


@recipe("models lineage")
def _models_lineage(scene: Scene) -> list[object]:
    return ["models", "lineage", "tiny@1"]


@recipe("monitor")
def _monitor(scene: Scene) -> list[object]:
    scene.traffic()
    return ["monitor", "tiny", "--window", "1h"]


@recipe("loop run")
def _loop_run(scene: Scene) -> list[object]:
    return ["loop", "run", "tiny", "--policy", "policy.yaml", "--as-of", "2013-07-01"]


@recipe("loop history")
def _loop_history(scene: Scene) -> list[object]:
    raise_alert("tiny", "rule:drift", "psi breached: a=3.1 (psi > 0.25 for 1 window)")
    stepped = scene.cli(*_loop_run(scene))
    assert stepped.code == 0, stepped.err
    return ["loop", "history", "tiny"]


@recipe("deploy")
def _deploy(scene: Scene) -> list[object]:
    return ["deploy", "tiny"]


@recipe("alerts")
def _alerts(scene: Scene) -> list[object]:
    raise_alert("tiny", "load_failed", "tiny@2 failed to load", {"version": 2})
    return ["alerts", "tiny"]


@recipe("predict")
def _predict(scene: Scene) -> list[object]:
    rows = scene.file("in.parquet", scene.tiny.rows(seed=2)[["a", "b"]].head(50))
    return ["predict", "tiny@champion", rows, scene.folder / "out.parquet"]


@recipe("feedback import")
def _feedback_import(scene: Scene) -> list[object]:
    ids = scene.traffic(20)
    labels = scene.file("labels.csv", pd.DataFrame({"id": ids, "label": [True] * len(ids)}))
    return ["feedback", "import", labels]


@recipe("events seal")
def _events_seal(scene: Scene) -> list[object]:
    scene.traffic(5)
    return ["events", "seal"]


@recipe("events compact")
def _events_compact(scene: Scene) -> list[object]:
    return ["events", "compact"]


@recipe("events status")
def _events_status(scene: Scene) -> list[object]:
    scene.traffic(5)
    return ["events", "status"]


@recipe("server token create")
def _token_create(scene: Scene) -> list[object]:
    return ["server", "token", "create", "--name", "ci", "--role", "editor"]


@recipe("server token list")
def _token_list(scene: Scene) -> list[object]:
    scene.cli("server", "token", "create", "--name", "ana")
    return ["server", "token", "list"]


def test_every_documented_command_has_a_recipe() -> None:
    assert sorted(RECIPES) == sorted(SHAPES)


def printed_shape(printed: object) -> Shape:
    """The type and keys of a JSON output; a list's items must all have the same keys."""
    if isinstance(printed, dict):
        return Shape("object", tuple(printed))
    assert isinstance(printed, list) and printed, "a list output must not be empty here"
    keys = {tuple(item) for item in printed}
    assert len(keys) == 1, f"the items of the list have different keys: {keys}"
    return Shape("list", keys.pop())


@pytest.mark.parametrize("command", sorted(SHAPES))
def test_the_documented_keys_are_the_printed_ones(scene: Scene, command: str) -> None:
    args = RECIPES[command](scene)
    done = scene.cli(*args, "--json")
    assert done.code == 0, done.err
    shape = printed_shape(json.loads(done.out))
    wanted = SHAPES[command]
    assert shape.kind == wanted.kind
    assert sorted(shape.keys) == sorted(wanted.keys), (
        f"docs/cli.md, `loopml {command} --json`: printed but not documented "
        f"{sorted(set(shape.keys) - set(wanted.keys))}; documented but not printed "
        f"{sorted(set(wanted.keys) - set(shape.keys))}"
    )
