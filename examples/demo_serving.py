"""The serving part of the demo: the flights champion is served over HTTP (`loopml serve`,
started the way a user would), a few thousand flights from April to June are sent to it one
request each, their true outcomes come back as feedback, and the log is read back: how many
predictions and labels it holds, and the live AUC with its interval. Then June is scored in
batch with `loopml predict`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import flights_pipeline
import httpx
import pandas as pd
from demo_pipeline import show

import loopml
from loopml.events import read_events

REQUESTS = 3000
CLIENTS = 4
FEEDBACK_CHUNK = 500
SEED = 7


def later_flights() -> pd.DataFrame:
    """Flights of April to June, as the pipeline's features step shapes them."""
    rows = loopml.data.get("flights").to_pandas()
    frame = flights_pipeline.features(rows)
    return frame[frame["month"].between(4, 6)].reset_index(drop=True)


def serve(port: int) -> subprocess.Popen:
    """`loopml serve flights` in the background, ready to answer."""
    print(f"\n$ loopml serve flights --port {port} &", flush=True)
    here = str(Path(__file__).parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [here, os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, "-m", "loopml.cli.main", "serve", "flights", "--port", str(port)]
    process = subprocess.Popen(command, env=env)
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("loopml serve did not start")
        try:
            httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2)
            return process
        except httpx.TransportError:
            time.sleep(0.2)


def send(port: int, records: list[dict]) -> list[dict]:
    """One request per flight from CLIENTS threads; returns each answer's prediction."""

    def one(client: httpx.Client, record: dict) -> dict:
        answer = client.post("/predict", json=record)
        answer.raise_for_status()
        return answer.json()["predictions"][0]

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=10) as client, ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(lambda record: one(client, record), records))


def feedback(port: int, ids: list[str], labels: list[bool]) -> tuple[int, int]:
    """Post the outcomes back by prediction id; returns (accepted, unknown)."""
    accepted = unknown = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for start in range(0, len(ids), FEEDBACK_CHUNK):
            items = [
                {"id": i, "label": bool(label)}
                for i, label in zip(
                    ids[start : start + FEEDBACK_CHUNK],
                    labels[start : start + FEEDBACK_CHUNK],
                    strict=True,
                )
            ]
            answer = client.post("/feedback", json=items).json()
            accepted, unknown = accepted + answer["accepted"], unknown + len(answer["unknown"])
    return accepted, unknown


def main() -> None:
    flights = later_flights()
    sample = flights.sample(REQUESTS, random_state=SEED).reset_index(drop=True)
    columns = [c for c in sample.columns if c not in ("time_hour", flights_pipeline.TARGET)]
    records = sample[columns].astype(object).where(sample[columns].notna(), None)
    records = records.to_dict(orient="records")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = serve(port)
    try:
        started = time.perf_counter()
        answers = send(port, records)
        took = time.perf_counter() - started
        print(
            f"Sent {len(answers):,} requests (flights of April-June) from {CLIENTS} clients in "
            f"{took:.1f}s: {len(answers) / took:,.0f} requests/s."
        )
        ids = [answer["id"] for answer in answers]
        accepted, unknown = feedback(port, ids, sample[flights_pipeline.TARGET].tolist())
        print(f"Posted their outcomes to /feedback: {accepted:,} accepted, {unknown} unknown ids.")
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(30)
    report_log()
    june = loopml.current_workspace().home / "tmp" / "june.parquet"
    june.parent.mkdir(exist_ok=True)
    flights[flights["month"] == 6].drop(columns=["time_hour"]).to_parquet(june)
    show(
        "predict",
        "flights@champion",
        str(june),
        str(june.with_name("june-scored.parquet")),
        "--force",
    )


def report_log() -> None:
    """What the prediction log holds now, and the live AUC on the labelled predictions."""
    predictions = read_events("predictions", endpoint="flights")
    labels = read_events("feedback", endpoint="flights")
    joined = loopml.serving.labelled("flights")
    print(
        f"The log holds {len(predictions):,} predictions and {len(labels):,} labels; "
        f"{len(joined):,} predictions have their label."
    )
    live = loopml.evaluate(
        "score", joined, target="label", metrics=["roc_auc"], resamples=500, seed=SEED
    )
    print(f"Live AUC on April-June, served by flights@champion: {live.metrics['roc_auc']} (95%)")


if __name__ == "__main__":
    main()
