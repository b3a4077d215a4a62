"""The loop part of the demo: NYC flights of March to December 2013 replayed month by month
through the served model, the loop left to run by itself.

Each month, a sample of its flights is sent to `loopml serve flights` in requests of 50 rows,
in four parts. At the month's end the flights' outcomes arrive as feedback and the month is
monitored (`loopml monitor --rules`). After each part and at the month's end the loop takes a
step (`loopml loop run`): while an alert rule fires and the cooldown has passed, it retrains
the pipeline on the newest three months of labelled data, judges the candidate against the
champion on the newest one with the gate, and starts the rollout; later steps move the
candidate from shadow to canary to champion. The loop's clock is the replay's: the first day
of the month whose data is complete. Nobody intervenes.

At the end: the monthly AUC of (a) the static January-February model, (b) the looped system
(what the server actually answered) and (c) an oracle retrained every month on the two months
before it, and the HTML monitoring report.
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
import numpy as np
import pandas as pd
from demo_pipeline import show
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

import loopml
from loopml.loop.controller import run_loop
from loopml.monitoring.window import monitor

HERE = Path(__file__).parent
POLICY = HERE / "flights_policy.yaml"
RULES = HERE / "flights_alerts.yaml"
MONTHS = range(3, 13)
PER_MONTH = 4000
PARTS = 4
ROWS = 50  # per request
CLIENTS = 4
FEEDBACK_CHUNK = 1000
SEED = 7


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


def month_start(month: int) -> float:
    """The first moment of a month of 2013 (of January 2014 for month 13)."""
    year, month = (2014, 1) if month == 13 else (2013, month)
    return pd.Timestamp(year=year, month=month, day=1, tz="UTC").timestamp()


def send_part(port: int, rows: pd.DataFrame) -> list[dict]:
    """The rows in requests of ROWS, from CLIENTS threads; each request carries a key so a
    canary keeps the same callers. Returns every answered prediction, in order."""
    columns = [c for c in rows.columns if c not in ("time_hour", flights_pipeline.TARGET)]
    records = rows[columns].astype(object).where(rows[columns].notna(), None)
    batches = [
        records.iloc[i : i + ROWS].to_dict(orient="records") for i in range(0, len(rows), ROWS)
    ]

    def one(client: httpx.Client, index: int) -> list[dict]:
        headers = {"X-Loopml-Key": f"gate-{index % 97}"}
        answer = client.post("/predict", json={"records": batches[index]}, headers=headers)
        answer.raise_for_status()
        return answer.json()["predictions"]

    base = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=base, timeout=30) as client, ThreadPoolExecutor(CLIENTS) as pool:
        answers = pool.map(lambda index: one(client, index), range(len(batches)))
        return [prediction for answer in answers for prediction in answer]


def step(port: int, as_of: float):
    """One step of the loop; when it changed the deployment, wait until the server follows
    (it rereads the deployment every two seconds), so the next requests meet the change."""
    taken = run_loop("flights", POLICY, as_of=as_of)
    if taken.decisions:
        wanted = loopml.serving.deployment("flights")[1]
        deadline = time.monotonic() + 30
        while httpx.get(f"http://127.0.0.1:{port}/deployment").json()["revision"] < wanted:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not follow the deployment")
            time.sleep(0.1)
    return taken


def replay(port: int, flights: pd.DataFrame) -> pd.DataFrame:
    """Every month through the server and the loop; returns each sent flight's month, label
    and the score the server answered."""
    sent = []
    for month in MONTHS:
        # in random order, so each request, and the canary's share of them, is a fair sample
        rows = flights[flights["month"] == month].sample(PER_MONTH, random_state=SEED + month)
        rows = rows.reset_index(drop=True)
        answered, steps = [], []
        for part in np.array_split(np.arange(len(rows)), PARTS):
            answered += send_part(port, rows.iloc[part])
            steps.append(step(port, month_start(month)))
        ids = [answer["id"] for answer in answered]
        feedback(port, ids, rows[flights_pipeline.TARGET].tolist())  # the month's outcomes
        sent.append(
            pd.DataFrame(
                {
                    "month": month,
                    "label": rows[flights_pipeline.TARGET].to_numpy(),
                    "score": [answer["score"] for answer in answered],
                }
            )
        )
        watch(port, month, steps)
    return pd.concat(sent, ignore_index=True)


def watch(port: int, month: int, steps: list) -> None:
    """Monitor the month, judge the alert rules, and let the loop take its monthly step;
    print the month and what the loop decided during it and at its end."""
    found = monitor("flights", label=f"2013-{month:02d}", rules=RULES)
    steps.append(step(port, month_start(month + 1)))
    champion = loopml.models.get_version("flights@champion").version
    auc = found.check("performance").details.get("roc_auc") or {}
    alerts = ", ".join(alert["rule"] for alert in found.fired) or "-"
    print(
        f"2013-{month:02d}  champion v{champion}  drifted {found.value('drifted_share'):.0%} "
        f"of features  live AUC {auc.get('value', float('nan')):.3f}  new alerts: {alerts}"
    )
    for decision in (decision for step in steps for decision in step.decisions):
        print(f"          loop: {decision.action}: {decision.message}")


def static_scores(flights: pd.DataFrame) -> dict[int, float]:
    """The January-February model (version 1) on the same flights."""
    model = loopml.models.load("flights@1")
    found = {}
    for month in MONTHS:
        rows = flights[flights["month"] == month].sample(PER_MONTH, random_state=SEED + month)
        x, y = flights_pipeline._xy(rows)
        found[month] = roc_auc_score(y, model.predict_proba(x)[:, 1])
    return found


def oracle_scores(flights: pd.DataFrame) -> dict[int, float]:
    """A model retrained every month on the two months before it, no gate, no delay."""
    found = {}
    for month in MONTHS:
        train = flights[flights["month"].between(month - 2, month - 1)]
        rows = flights[flights["month"] == month].sample(PER_MONTH, random_state=SEED + month)
        x, y = flights_pipeline._xy(train)
        model = HistGradientBoostingClassifier(
            max_depth=6,
            learning_rate=0.1,
            max_iter=150,
            categorical_features="from_dtype",
            random_state=0,
        ).fit(x, y)
        x_month, y_month = flights_pipeline._xy(rows)
        found[month] = roc_auc_score(y_month, model.predict_proba(x_month)[:, 1])
    return found


def table(sent: pd.DataFrame, static: dict[int, float], oracle: dict[int, float]) -> None:
    print("\nMonthly AUC on the flights sent (4,000 a month):")
    print("month     static Jan-Feb   looped system   oracle (monthly)")
    looped = {m: roc_auc_score(rows["label"], rows["score"]) for m, rows in sent.groupby("month")}
    for month in MONTHS:
        print(
            f"2013-{month:02d}  {static[month]:14.3f}  {looped[month]:14.3f}  {oracle[month]:16.3f}"
        )
    means = [np.mean(list(found.values())) for found in (static, looped, oracle)]
    print(f"mean     {means[0]:14.3f}  {means[1]:14.3f}  {means[2]:16.3f}")


def main() -> None:
    rows = loopml.data.get("flights").to_pandas()
    flights = flights_pipeline.features(rows)
    print(f"Policy: {POLICY.name}; alert rules: {RULES.name}. Each month is monitored with")
    print(f"  loopml monitor flights --label 2013-MM --rules {RULES.name}")
    print(f"and the loop steps with  loopml loop run flights --policy {POLICY.name} --as-of ...")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = serve(port)
    started = time.perf_counter()
    try:
        sent = replay(port, flights)
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(30)
    print(f"Replayed {len(sent):,} flights in {time.perf_counter() - started:.0f}s.")
    table(sent, static_scores(flights), oracle_scores(flights))
    show("loop", "history", "flights")
    report = loopml.current_workspace().home / "reports" / "monitoring-flights.html"
    show("report", "flights", "-o", str(report))
    december = loopml.current_workspace().home / "tmp" / "december.parquet"
    december.parent.mkdir(exist_ok=True)
    flights[flights["month"] == 12].drop(columns=["time_hour"]).to_parquet(december)
    scored = december.with_name("december-scored.parquet")
    show("predict", "flights@champion", str(december), str(scored), "--force")


if __name__ == "__main__":
    main()
