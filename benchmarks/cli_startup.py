"""Command-line start-up: how long `loopml --help`, `loopml runs list` and `loopml data show`
take from a fresh process to their answer, beside the MLflow commands a user would run
instead (`mlflow --help`, `mlflow experiments search`, `mlflow runs list`).

Each command runs in a fresh process in a temporary project holding one experiment with three
runs and one two-row dataset snapshot (MLflow: one experiment with three runs, on SQLite).
Every command runs once untimed (so the operating system has the files in its cache), then
REPEATS times; the median wall-clock time is kept. Imports are what this measures: it is
most of what a short command does.

Run from the repository root:

    benchmarks/.venv/bin/python benchmarks/cli_startup.py

Results go to benchmarks/results/cli_startup.json and benchmarks/results/cli_startup.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import describe

RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent
TARGET_SECONDS = 0.5

SETUP_LOOPML = """
import loopml
for lr in (0.1, 0.01, 0.001):
    with loopml.start_run(experiment="startup", params={"lr": lr}) as run:
        run.log_metrics({"auc": 0.7})
"""
SETUP_MLFLOW = """
import mlflow
mlflow.set_tracking_uri("sqlite:///mlflow.db")
mlflow.set_experiment("startup")
for lr in (0.1, 0.01, 0.001):
    with mlflow.start_run():
        mlflow.log_param("lr", lr)
        mlflow.log_metric("auc", 0.7)
print(mlflow.get_experiment_by_name("startup").experiment_id)
"""


def timed(command: list[str], directory: Path, repeats: int) -> float:
    """The median seconds `command` takes in `directory`, after one untimed run."""
    times = []
    for attempt in range(repeats + 1):
        started = time.perf_counter()
        done = subprocess.run(command, cwd=directory, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
        if attempt:
            times.append(elapsed)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    with tempfile.TemporaryDirectory() as folder:
        project = Path(folder)
        (project / "rows.csv").write_text("x,kind\n1,a\n2,b\n")
        subprocess.run([BIN / "loopml", "init"], cwd=project, check=True, capture_output=True)
        subprocess.run([python, "-c", SETUP_LOOPML], cwd=project, check=True)
        subprocess.run([BIN / "loopml", "data", "add", "rows", "rows.csv"], cwd=project, check=True)
        experiment = subprocess.run(
            [python, "-c", SETUP_MLFLOW], cwd=project, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        os.environ["MLFLOW_TRACKING_URI"] = "sqlite:///mlflow.db"
        pairs = [
            ("--help", ["loopml", "--help"], ["mlflow", "--help"]),
            (
                "list runs",
                ["loopml", "runs", "list"],
                ["mlflow", "runs", "list", "--experiment-id", experiment],
            ),
            (
                "show data / search experiments",
                ["loopml", "data", "show", "rows"],
                ["mlflow", "experiments", "search"],
            ),
        ]
        rows = []
        for label, ours, theirs in pairs:
            loopml_seconds = timed([str(BIN / ours[0]), *ours[1:]], project, args.repeats)
            mlflow_seconds = timed([str(BIN / theirs[0]), *theirs[1:]], project, args.repeats)
            rows.append(
                {
                    "work": label,
                    "loopml": " ".join(ours),
                    "mlflow": " ".join(theirs),
                    "loopml_seconds": round(loopml_seconds, 3),
                    "mlflow_seconds": round(mlflow_seconds, 3),
                    "mlflow_over_loopml": round(mlflow_seconds / loopml_seconds, 2),
                    "under_target": loopml_seconds < TARGET_SECONDS,
                }
            )
            print(rows[-1])
    write(rows, args.repeats)


def write(rows: list[dict], repeats: int) -> None:
    RESULTS.mkdir(exist_ok=True)
    machine = describe(("mlflow", "typer", "sqlalchemy", "pandas"))
    result = {
        "machine": machine,
        "repeats": repeats,
        "target_seconds": TARGET_SECONDS,
        "commands": rows,
    }
    (RESULTS / "cli_startup.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Command-line start-up: loopml vs MLflow",
        "",
        f"Median of {repeats} fresh processes after one untimed run, on {machine['cpu_count']}"
        f" CPUs ({machine['cpu']}), Python {machine['python']}, MLflow {machine['mlflow']},"
        f" Typer {machine['typer']}; loopml {machine['loopml_commit']}, {machine['date']}.",
        "",
        f"| work | loopml | s | MLflow | s | MLflow / loopml | loopml under {TARGET_SECONDS} s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {row['work']} | `{row['loopml']}` | {row['loopml_seconds']:.2f} |"
            f" `{row['mlflow']}` | {row['mlflow_seconds']:.2f} |"
            f" {row['mlflow_over_loopml']:.1f} | {'yes' if row['under_target'] else 'no'} |"
        )
    lines += [
        "",
        "Where the time goes in a command that reads the workspace (`python -X importtime`):"
        " SQLAlchemy's import, and Typer (0.22 and later) building a pydantic validator for"
        " every option of the command. `loopml --help` imports no command: it lists them"
        " from their summaries.",
    ]
    (RESULTS / "cli_startup.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
