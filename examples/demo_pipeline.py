"""The pipeline part of the demo: the flights model trained as a pipeline, run twice (the
second run comes from the cache), then swept with Optuna on a process pool.

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
