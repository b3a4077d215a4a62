"""The pipeline part of the demo: the flights model trained as a pipeline, run twice (the
second run comes from the cache), swept with Optuna on a process pool; then the model of the
first run is registered with its card, and promoted to champion through the gate.

The pipeline lives in flights_pipeline.py; the commands run it from this folder, exactly
as a user would type them.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SPACE = HERE / "flights_space.yaml"
GATE = HERE / "flights_gate.yaml"
CONTRACT = HERE / "flights.contract.yaml"
OWNER = "ops analytics"
USE = "Flag flights from New York likely to arrive 15+ minutes late, to plan gate staffing."


def show(*args: str, check: bool = True) -> None:
    """Print a loopml command and what it prints; this folder's modules are importable."""
    print(f"\n$ loopml {shlex.join(args)}", flush=True)
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    subprocess.run([sys.executable, "-m", "loopml.cli.main", *args], check=check, env=env)


def main() -> None:
    show("run", "flights_pipeline:train", "--seed", "7")
    show("run", "flights_pipeline:train", "--seed", "7")  # unchanged: every step cached
    show(
        "sweep",
        "flights_pipeline:train",
        "--space",
        str(SPACE),
        "--metric",
        "val_auc",
        "--trials",
        "8",
        "--parallel",
        "2",
        "--executor",
        "process:2",
        "--seed",
        "7",
    )
    register_and_promote()


def register_and_promote() -> None:
    """Register the first run's model, promote it through the gate, write its card."""
    import loopml

    first = loopml.search_runs(where="name = flights", sort="start_time", limit=1)[0]
    show(
        "models",
        "register",
        "flights",
        "--run",
        first.id,
        "--owner",
        OWNER,
        "--intended-use",
        USE,
        "--contract",
        str(CONTRACT),
        "--reference",
        "train_rows",
        "--target",
        "delayed",
    )
    split = next(run for run in loopml.child_runs(first.id) if run.name == "split")
    march = loopml.load_artifact(split.id, "valid_rows")
    print(f"\n$ loopml models promote flights 1 --policy {GATE.name} (on March, in Python)")
    outcome = loopml.models.promote("flights", 1, policy=GATE, data=march)
    for check in outcome.checks:
        print(f"  {'pass' if check.passed else 'FAIL'}  {check.check}: {check.detail}")
    verdict = "is now champion" if outcome.moved else "was refused"
    print(f"flights@1 {verdict}.")
    card = loopml.current_workspace().home / "reports" / "model-card-flights.html"
    show("models", "card", "flights@champion", "--html", "-o", str(card))
    show("models", "history", "flights")
