"""The loop part of the demo: NYC flights of March to December 2013 replayed month by month
through the served model, the loop left to run by itself.

Each month, a sample of its flights is sent to `loopml serve flights` in requests of 50 rows,
in four parts: what a caller knows before take-off (the flight, its schedule, the weather and
the weekday). At the month's end the flights' outcomes arrive as feedback and the month is
monitored (`loopml monitor --rules`). After each part and at the month's end the loop takes a
step (`loopml loop run`): when a trigger holds and the cooldown has passed, it makes a
snapshot of what was served with the labels posted so far, appended to the January-February
flights the first model knew (`loopml data from-log`), retrains the pipeline on its newest
three months, judges the candidate against the champion on the newest one with the gate,
refits it on all three and starts the rollout; later steps move the candidate to champion.
The loop's clock is the replay's: the first day of the month whose data is complete. It never
reads a flight of the year's snapshot after February, nor a label not yet posted. Nobody
intervenes.

At the end: the monthly AUC of (a) the static January-February model, (b) the looped system
(what the server actually answered) and (c) an oracle: the loop's recipe retrained at every
month's start on the policy's window (the three months before), as the loop could have had
them (the January-February flights and the samples sent since), with no gate and no delay;
and the HTML monitoring report.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path
from typing import Any

import demo_data
import flights_pipeline
import httpx
import numpy as np
import pandas as pd
from demo_pipeline import show
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

import loopml
from loopml.loop.controller import run_loop
from loopml.loop.policy import back, read_policy
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
MARCH = pd.Timestamp("2013-03-01", tz="UTC")
CALLERS = 97  # distinct request keys, taken in turn over the whole replay
KEYS = count()


def serve(port: int, name: str = "flights", folders: tuple[str, ...] = ()) -> subprocess.Popen:
    """`loopml serve NAME` in the background, ready to answer; this folder's modules (and
    those of ``folders``) importable."""
    print(f"\n$ loopml serve {name} --port {port} &", flush=True)
    path = [str(HERE), *folders, os.environ.get("PYTHONPATH")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    command = [sys.executable, "-m", "loopml.cli.main", "serve", name, "--port", str(port)]
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


def feedback(port: int, ids: list[str], labels: list[Any]) -> tuple[int, int]:
    """Post the outcomes (JSON values) back by prediction id; returns (accepted, unknown)."""
    accepted = unknown = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        for start in range(0, len(ids), FEEDBACK_CHUNK):
            items = [
                {"id": i, "label": label}
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


def send_part(port: int, records: pd.DataFrame) -> list[dict]:
    """The records (one column per field a caller sends; times as ISO text) in requests of
    ROWS, from CLIENTS threads. Each request carries its caller's key, so a canary keeps the
    same callers; the CALLERS keys are taken in turn over the whole replay. Returns every
    answered prediction, in order."""
    records = records.astype(object).where(records.notna(), None)
    batches = [
        records.iloc[i : i + ROWS].to_dict(orient="records") for i in range(0, len(records), ROWS)
    ]
    keys = [f"caller-{next(KEYS) % CALLERS}" for _ in batches]

    def one(client: httpx.Client, index: int) -> list[dict]:
        headers = {"X-Loopml-Key": keys[index]}
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
        follow(port, "flights")
    return taken


def follow(port: int, name: str) -> None:
    """Wait until the server on the port serves NAME's stored deployment revision."""
    wanted = loopml.serving.deployment(name)[1]
    deadline = time.monotonic() + 30
    while httpx.get(f"http://127.0.0.1:{port}/deployment").json()["revision"] < wanted:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not follow the deployment")
        time.sleep(0.1)


def requests_of(raw: pd.DataFrame, flights: pd.DataFrame) -> pd.DataFrame:
    """What a caller sends for each flight: its fields known before take-off (the flight,
    its schedule and the weather; the time as ISO text) and the weekday the model reads."""
    known = [c for c in raw.columns if c not in (*demo_data.AFTER_TAKE_OFF, "delayed")]
    sent = raw[known].assign(weekday=flights["weekday"].to_numpy())
    return sent.assign(time_hour=raw["time_hour"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def sample(flights: pd.DataFrame, month: int) -> pd.DataFrame:
    """The month's flights sent, in random order, so each request (and the canary's share of
    them) is a fair sample."""
    rows = flights[flights["month"] == month]
    return rows.sample(PER_MONTH, random_state=SEED + month)


def replay(port: int, raw: pd.DataFrame, flights: pd.DataFrame) -> pd.DataFrame:
    """Every month through the server and the loop; returns each sent flight's month, label
    and the score the server answered (raw and flights: the same flights, as stored and as
    features)."""
    sent = []
    for month in MONTHS:
        chosen = sample(flights, month).index
        rows = flights.loc[chosen].reset_index(drop=True)
        records = requests_of(raw.loc[chosen], flights.loc[chosen])
        answered, steps = [], []
        for part in np.array_split(np.arange(len(rows)), PARTS):
            answered += send_part(port, records.iloc[part])
            steps.append(step(port, month_start(month)))
        ids = [answer["id"] for answer in answered]
        outcomes = [bool(y) for y in rows[flights_pipeline.TARGET]]
        feedback(port, ids, outcomes)  # the month's outcomes
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
        x, y = flights_pipeline._xy(sample(flights, month))
        found[month] = roc_auc_score(y, model.predict_proba(x)[:, 1])
    return found


def known(flights: pd.DataFrame) -> pd.DataFrame:
    """The labelled flights the loop can have by the end of the replay: January and February
    whole, and each later month's sample."""
    later = [sample(flights, month) for month in MONTHS]
    return pd.concat([flights[flights["month"] <= 2], *later])


def oracle_scores(flights: pd.DataFrame) -> dict[int, float]:
    """The loop's recipe retrained at every month's start on the policy's window, as the loop
    could have the rows (``known``), with no gate and no delay."""
    found, history = {}, known(flights)
    window = read_policy(POLICY).retrain.window
    for month in MONTHS:
        start = month_start(month)
        when = history["time_hour"]
        first = pd.Timestamp(back(start, window), unit="s", tz="UTC")
        train = history[(when >= first) & (when < pd.Timestamp(start, unit="s", tz="UTC"))]
        rows = sample(flights, month)
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
    print("month     static Jan-Feb   looped system   oracle (monthly refit)")
    looped = {m: roc_auc_score(rows["label"], rows["score"]) for m, rows in sent.groupby("month")}
    for month in MONTHS:
        print(
            f"2013-{month:02d}  {static[month]:14.3f}  {looped[month]:14.3f}  {oracle[month]:16.3f}"
        )
    means = [np.mean(list(found.values())) for found in (static, looped, oracle)]
    print(f"mean     {means[0]:14.3f}  {means[1]:14.3f}  {means[2]:16.3f}")


def base(raw: pd.DataFrame) -> None:
    """What the first model knew, the base the loop's training data grows from: the
    flights of January and February as stored."""
    before = raw[raw["time_hour"] < MARCH]
    show_base = loopml.data.add("flights.base", before, time_column="time_hour", parent="flights")
    print(f"The loop's training data starts from {show_base.ref}: {len(before):,} flights.")


def main() -> None:
    stored = loopml.data.get("flights").to_pandas()
    raw = stored[stored[flights_pipeline.TARGET].notna()].reset_index(drop=True)
    flights = flights_pipeline.features(raw)  # row for row the same flights as raw
    base(raw)
    print(f"Policy: {POLICY.name}; alert rules: {RULES.name}. Each month is monitored with")
    print(f"  loopml monitor flights --label 2013-MM --rules {RULES.name}")
    print(f"and the loop steps with  loopml loop run flights --policy {POLICY.name} --as-of ...")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = serve(port)
    started = time.perf_counter()
    try:
        sent = replay(port, raw, flights)
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
