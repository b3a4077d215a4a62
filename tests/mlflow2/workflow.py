"""An MLflow user's own code, run by the MLflow 2.x client against MLFLOW_TRACKING_URI (a
loopml server): prints what it saw as one JSON line for the test to check."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression


def main() -> None:
    folder = Path(tempfile.mkdtemp())
    (folder / "note.txt").write_text("hello")
    (folder / "plots").mkdir()
    (folder / "plots" / "a.txt").write_text("a")
    x = np.random.default_rng(0).normal(size=(60, 3))
    y = x[:, 0] > 0
    mlflow.set_experiment("mlflow2")
    with mlflow.start_run(run_name="two") as run:
        mlflow.log_param("alpha", 0.5)
        mlflow.log_params({"l1": 0.1, "depth": 3})
        for step in range(5):
            mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
        mlflow.log_metrics({"auc": 0.9, "acc": 0.8})
        mlflow.set_tag("team", "risk")
        mlflow.log_artifact(str(folder / "note.txt"))
        mlflow.log_artifacts(str(folder / "plots"), artifact_path="plots")
        mlflow.sklearn.log_model(LogisticRegression().fit(x, y), "model")
    client = MlflowClient()
    found = mlflow.search_runs(experiment_names=["mlflow2"], filter_string="metrics.auc > 0.5")
    loaded = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    downloaded = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="plots", dst_path=str(folder / "out")
    )
    seen = {
        "version": mlflow.__version__,
        "run_id": run.info.run_id,
        "found": list(found["run_id"]),
        "history": [m.value for m in client.get_metric_history(run.info.run_id, "loss")],
        "artifacts": sorted(a.path for a in client.list_artifacts(run.info.run_id)),
        "downloaded": sorted(p.name for p in Path(downloaded).iterdir()),
        "predictions": [bool(v) for v in loaded.predict(x[:5])],
        "expected": [bool(v) for v in y[:5]],
    }
    print(json.dumps(seen))


if __name__ == "__main__":
    sys.exit(main())
