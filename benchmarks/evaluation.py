"""Bootstrap intervals of ROC AUC: loopml against a straightforward loop over scikit-learn,
and against MLflow's evaluate for the plain metrics (which it gives without intervals).

Workload: 1,000,000 rows of a binary target (20% positive) with a model score, generated
with a fixed seed; 1,000 bootstrap resamples of ROC AUC.

- loopml: ``loopml.evaluate(score_column, frame, target=..., metrics=["roc_auc"],
  resamples=1000, seed=...)``: the point value and its 95% interval. A second line times the
  default, all eight classification metrics with their intervals.
- The straightforward loop: for each of the same 1,000 resamples (the same Poisson weights,
  from ``loopml.evaluation.bootstrap.weights`` with the same seed), ``roc_auc_score(y, score,
  sample_weight=w)``. Its 1,000 AUCs must equal loopml's to 1e-9, or the benchmark stops.
  The loop is timed on the first 50 resamples and the time scaled to 1,000 (the loop is
  linear in the resamples); ``--full-loop`` times all 1,000.
- MLflow: ``mlflow.evaluate(data=frame, targets=..., predictions=..., model_type=
  "classifier")`` in a run on a local SQLite store: the plain metrics, no intervals.

Targets (issue): loopml under 10 s, and at least 20x faster than the loop, with identical
results for a fixed seed.

Run from the repository root in the benchmarks' environment (see benchmarks/README.md):

    benchmarks/.venv/bin/python benchmarks/evaluation.py

Results go to benchmarks/results/evaluation.json and benchmarks/results/evaluation.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
ROWS = 1_000_000
RESAMPLES = 1000
LOOP_SAMPLE = 50
SEED = 20_261_122
TARGETS = {"loopml_seconds": 10.0, "speedup_over_loop": 20.0}


def data(rows: int) -> pd.DataFrame:
    rng = np.random.default_rng(SEED)
    positive = rng.random(rows) < 0.2
    raw = rng.normal(size=rows) + 1.2 * positive
    return pd.DataFrame({"score": 1 / (1 + np.exp(-raw)), "y": positive})


def time_loopml(
    frame: pd.DataFrame, resamples: int, metrics: list[str] | None
) -> tuple[float, Any]:
    import loopml

    loopml.evaluate("score", frame.head(1000), target="y", resamples=10)  # warm imports
    started = time.perf_counter()
    found = loopml.evaluate(
        "score", frame, target="y", metrics=metrics, resamples=resamples, seed=SEED
    )
    return time.perf_counter() - started, found


def loop_aucs(frame: pd.DataFrame, resamples: int, count: int) -> tuple[float, np.ndarray]:
    """roc_auc_score on the first `count` of the same resamples; seconds and values."""
    from sklearn.metrics import roc_auc_score

    from loopml.evaluation.bootstrap import weights

    y, score = frame["y"].to_numpy(), frame["score"].to_numpy()
    values = []
    started = time.perf_counter()
    for chunk in weights(SEED, len(frame), count):
        values += [roc_auc_score(y, score, sample_weight=w) for w in chunk]
    return time.perf_counter() - started, np.array(values)


def loopml_aucs(frame: pd.DataFrame, count: int) -> np.ndarray:
    """The AUC of each of loopml's first `count` resamples, from its own kernel."""
    from loopml.evaluation.bootstrap import weights
    from loopml.evaluation.metrics import RankedScores

    ranked = RankedScores(frame["y"].to_numpy(), frame["score"].to_numpy())
    return np.concatenate([ranked.auc(w) for w in weights(SEED, len(frame), count)])


def time_mlflow(frame: pd.DataFrame, folder: Path) -> tuple[float, dict[str, float]]:
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
    os.chdir(folder)  # MLflow puts run artifacts under ./mlruns
    data = frame.assign(prediction=(frame["score"] >= 0.5).astype(int), y=frame["y"].astype(int))
    with mlflow.start_run():
        started = time.perf_counter()
        result = mlflow.evaluate(
            data=data,
            targets="y",
            predictions="prediction",
            model_type="classifier",
            evaluators=["default"],
        )
        seconds = time.perf_counter() - started
    return seconds, {k: float(v) for k, v in result.metrics.items() if np.isscalar(v)}


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "loopml": metadata.version("loopml"),
        "scikit-learn": metadata.version("scikit-learn"),
        "mlflow": metadata.version("mlflow"),
        "numpy": metadata.version("numpy"),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def markdown(found: dict[str, Any]) -> str:
    m, r = found["machine"], found["results"]
    met = found["targets_met"]
    yes = {True: "met", False: "**not met**"}
    auc = r["loopml_auc"]
    rows = [
        ["line", "time", "vs loopml", "what it gives"],
        ["---"] * 4,
        [
            "loopml `evaluate(..., metrics=['roc_auc'])`",
            f"**{r['loopml_seconds']:.2f} s**",
            "",
            f"AUC {auc['value']:.4f} [{auc['low']:.4f}, {auc['high']:.4f}] (95% interval)",
        ],
        [
            "loopml `evaluate` (all metrics)",
            f"{r['loopml_all_metrics_seconds']:.2f} s",
            f"{r['loopml_all_metrics_seconds'] / r['loopml_seconds']:.2f}x",
            "AUC, log-loss, Brier, accuracy, precision, recall, F1, ECE, each with an interval",
        ],
        [
            f"loop over `roc_auc_score` ({r['loop_timed_resamples']} resamples timed, "
            f"scaled to {r['resamples']:,})",
            f"{r['loop_seconds']:.1f} s",
            f"**{r['speedup_over_loop']:.0f}x slower**",
            "AUC only",
        ],
        [
            "MLflow `evaluate` (default classifier evaluator)",
            f"{r['mlflow_seconds']:.2f} s",
            f"{r['mlflow_seconds'] / r['loopml_seconds']:.2f}x",
            "plain metrics of thresholded predictions, no intervals",
        ],
    ]
    table = "\n".join("| " + " | ".join(row) + " |" for row in rows)
    return f"""# Bootstrap intervals: loopml vs a loop over scikit-learn, and MLflow evaluate

Machine: {m["cpus"]} CPUs, Python {m["python"]}, loopml {m["loopml"]}, scikit-learn
{m["scikit-learn"]}, MLflow {m["mlflow"]}, NumPy {m["numpy"]}, {m["date"]}. One run of
`benchmarks/evaluation.py`; compare the ratios across machines.

Workload: {r["rows"]:,} rows (20% positive), {r["resamples"]:,} bootstrap resamples.

{table}

Targets: loopml under 10 s: {yes[met["loopml_seconds"]]}; at least 20x faster than the loop:
{yes[met["speedup_over_loop"]]}. The loop's and loopml's AUCs on the same resamples agree to
{r["largest_difference"]:.1e} (checked on the {r["checked_resamples"]} resamples the loop ran;
the benchmark stops if any differs by more than 1e-9).

- Both use the same Poisson(1) weights from `loopml.evaluation.bootstrap.weights(seed, n,
  resamples)`; the loop hands each to `roc_auc_score(..., sample_weight=w)`, which sorts the
  scores every time. loopml sorts once and takes one cumulative sum per resample, drawing and
  computing resamples on both cores.
- MLflow's `evaluate` is timed for the plain metrics it computes on thresholded predictions
  given as a column, logging them to a run; it gives no intervals.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--full-loop", action="store_true", help="time all resamples of the loop")
    args = parser.parse_args()
    frame = data(ROWS)
    print("loopml ...", flush=True)
    seconds, found = time_loopml(frame, RESAMPLES, ["roc_auc"])
    print(f"  {seconds:.2f} s", flush=True)
    print("loopml, all eight metrics ...", flush=True)
    all_seconds, _ = time_loopml(frame, RESAMPLES, None)
    print(f"  {all_seconds:.2f} s", flush=True)
    count = RESAMPLES if args.full_loop else LOOP_SAMPLE
    print(f"loop over roc_auc_score, {count} resamples ...", flush=True)
    loop_seconds, loop_values = loop_aucs(frame, RESAMPLES, count)
    loop_seconds *= RESAMPLES / count
    ours = loopml_aucs(frame, count)
    largest = float(np.max(np.abs(ours - loop_values)))
    if largest > 1e-9:
        raise SystemExit(f"Check failed: loopml and the loop differ by {largest:.3g}")
    print(f"  {loop_seconds:.1f} s (scaled), largest difference {largest:.1e}", flush=True)
    print("MLflow evaluate ...", flush=True)
    here = Path.cwd()
    with tempfile.TemporaryDirectory() as folder:
        try:
            mlflow_seconds, mlflow_metrics = time_mlflow(frame, Path(folder))
        finally:
            os.chdir(here)
    print(f"  {mlflow_seconds:.2f} s", flush=True)
    results = {
        "rows": ROWS,
        "resamples": RESAMPLES,
        "loopml_seconds": seconds,
        "loopml_all_metrics_seconds": all_seconds,
        "loopml_auc": found.metrics["roc_auc"].to_dict(),
        "loop_seconds": loop_seconds,
        "loop_timed_resamples": count,
        "speedup_over_loop": loop_seconds / seconds,
        "checked_resamples": count,
        "largest_difference": largest,
        "mlflow_seconds": mlflow_seconds,
        "mlflow_metrics": mlflow_metrics,
    }
    output = {
        "machine": machine(),
        "results": results,
        "targets": TARGETS,
        "targets_met": {
            "loopml_seconds": seconds < TARGETS["loopml_seconds"],
            "speedup_over_loop": results["speedup_over_loop"] >= TARGETS["speedup_over_loop"],
        },
    }
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "evaluation.json").write_text(json.dumps(output, indent=2) + "\n")
    (args.output / "evaluation.md").write_text(markdown(output))
    print(f"Wrote {args.output / 'evaluation.json'} and {args.output / 'evaluation.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
