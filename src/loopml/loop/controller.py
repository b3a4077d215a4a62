"""The loop controller: one step of a retraining policy, taken as often as it is called
(``loopml loop run``, or after each window of a monitoring server).

What a step does depends on where the endpoint's deployment stands:

- nothing on trial: if a trigger holds (an alert rule firing, the last retrain too old, enough
  new labels) and the cooldown has passed, retrain through the pipeline, register the
  candidate with its reference; if it scores the newest labelled window (the run's validation
  rows) as the champion does, record it as unchanged and stop; otherwise judge it with the
  gate against the champion on that window, and if it passes, refit the same recipe on the
  whole window (its newest part included), check the refit model's sanity, and start it (or
  the gated model, when the refit fails or is not sane) as a shadow;
- a shadow: once it has answered ``shadow_requests`` copies, make it a canary;
- a canary: once it has answered ``canary_requests`` with no guardrail breached, make it the
  champion and end the canary. A breach is handled by the servers themselves, which take the
  canary out at once; the next step records that rollback.

Every decision is recorded with its evidence (``loopml.loop.decisions``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

from loopml.errors import LoopmlError
from loopml.evaluation.wording import direction, interval
from loopml.loop.history import decisions, record
from loopml.loop.policy import RetrainingPolicy, back, read_policy
from loopml.store.monitoring import DecisionRecord
from loopml.workspace import Workspace, current_workspace

log = logging.getLogger("loopml.loop")
HARM_ALERT = "loop:harmful_promotion"


@dataclass
class LoopStep:
    """What one step decided, and where the rollout stands after it."""

    state: str
    message: str
    decisions: list[DecisionRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "message": self.message,
            "decisions": [found.to_dict() for found in self.decisions],
        }


def run_loop(
    name: str,
    policy: Any,
    *,
    as_of: float | None = None,
    workspace: Workspace | None = None,
) -> LoopStep:
    """Take one step of the retraining policy for endpoint NAME (see the module docstring).

    as_of: the loop's clock, which dates the data windows and the schedule (now by default;
    a replay passes its own)."""
    from loopml.serving.deployments import deployment

    workspace = workspace or current_workspace()
    rules = read_policy(policy)
    clock = float(as_of if as_of is not None else time.time())
    spec, revision = deployment(name, workspace=workspace)
    step = _Step(name, rules, clock, workspace, revision)
    if spec.shadow:
        return step.shadowing(_version(name, spec.shadow, workspace), spec)
    if spec.canary is not None:
        return step.canary(_version(name, spec.canary.version, workspace), spec)
    return step.idle(spec)


def _version(name: str, which: str, workspace: Workspace) -> int:
    from loopml.registry.api import get_version

    return get_version(f"{name}@{which}", workspace=workspace).version


class _Step:
    def __init__(
        self,
        name: str,
        policy: RetrainingPolicy,
        as_of: float,
        workspace: Workspace,
        revision: int | None = None,
    ) -> None:
        self.name, self.policy, self.as_of, self.workspace = name, policy, as_of, workspace
        self.revision = revision  # of the deployment the step decides on
        self.made: list[DecisionRecord] = []
        self.past = decisions(name, workspace=workspace)
        self.served: str | None = None  # the snapshot of served data this step trained on

    def decide(
        self, action: str, message: str, version: int | None = None, **evidence: Any
    ) -> None:
        log.info("%s: %s", self.name, message)
        self.made.append(
            record(
                self.name,
                action,
                message,
                version=version,
                as_of=self.as_of,
                evidence=evidence,
                workspace=self.workspace,
            )
        )

    def result(self, state: str, message: str) -> LoopStep:
        return LoopStep(state, message, self.made)

    # -- nothing on trial -------------------------------------------------------------------

    def idle(self, spec: Any) -> LoopStep:
        self._note_rollback(spec)
        judged = self._judge_promotion(spec)
        if judged is not None:
            return judged
        proposed = self._from_pool(spec)
        if proposed is not None:
            return proposed
        reasons = self._triggers()
        if not reasons:
            return self.result("idle", "no trigger holds; nothing to do")
        wait = self._cooldown()
        if wait:
            return self.result("idle", f"{'; '.join(reasons)}, but {wait}")
        version, run = self._retrain(reasons)
        if version is None:
            return self.result("idle", "the retrain failed; see the decision log")
        if self._unchanged(version, run):
            return self.result("idle", f"candidate {version} scores as the champion does")
        data = run[self.policy.retrain.evaluation]
        if not self._gate(version, data, self._backtest(version, data)):
            return self.result("idle", f"candidate {version} was refused by the gate")
        if self.policy.refit.enabled:
            version = self._refit(version, run)
        return self._start_shadow(version, spec)

    # -- what was served, judged on its labels ---------------------------------------------

    def _judge_promotion(self, spec: Any) -> LoopStep | None:
        """The newest promotion, once enough of what it served is labelled: held, or harmful
        (worse than the version it replaced beyond the paired interval), then rolled back
        and alerted on. Judged once; None when there is nothing (yet) to judge."""
        from loopml.loop.served import labelled_rows

        harm = self.policy.harm
        promoted = self._last("promote")
        if not harm.enabled or promoted is None or self._judged(promoted):
            return None
        version, previous = promoted.version, promoted.evidence.get("previous")
        champion = _version(self.name, spec.champion, self.workspace)
        if version is None or previous is None or champion != version:
            return None
        rows = labelled_rows(
            self.name,
            made_since=promoted.at,
            version=version,
            role="champion",
            workspace=self.workspace,
        )
        if rows.num_rows < harm.min_rows:
            return None
        try:
            found = self._compare(rows, [version], previous)[version]
        except LoopmlError as error:
            self.decide(
                "harm_unjudged",
                f"promotion of version {version} could not be judged: {error}",
                version,
                promotion=promoted.id,
            )
            return None
        metric = found.metric
        shown = interval(found.gain, found.low, found.high)
        evidence = {"promotion": promoted.id, "previous": previous, **found.to_dict()}
        if found.high >= 0:
            self.decide(
                "held",
                f"version {version} served as well as version {previous} would have on "
                f"{found.rows:,} labelled rows: {metric} improvement {shown}",
                version,
                **evidence,
            )
            return None
        message = (
            f"version {version} served worse than version {previous} would have on "
            f"{found.rows:,} labelled rows: {metric} improvement {shown} ({direction(metric)})"
        )
        self.decide("harmful", message, version, **evidence)
        from loopml.serving.deployments import raise_alert

        raise_alert(self.name, HARM_ALERT, message, evidence, workspace=self.workspace)
        if not harm.rollback:
            return self.result("idle", f"promotion of version {version} was harmful")
        if not self._restore(
            spec, version, previous, f"the loop: promotion of {version} was harmful"
        ):
            return self.result("idle", f"version {version} was harmful; it no longer serves")
        self.decide(
            "rollback",
            f"version {previous} is champion again: the promotion of {version} was harmful",
            previous,
            harmful=version,
        )
        return self.result("idle", f"version {previous} is champion again")

    def _judged(self, promoted: DecisionRecord) -> bool:
        return any(
            d.action in ("held", "harmful", "harm_unjudged")
            and d.evidence.get("promotion") == promoted.id
            for d in self.past + self.made
        )

    def _compare(self, rows: Any, versions: list[int], versus: int) -> dict[int, Any]:
        """Each version against ``versus`` on the labelled served rows, every one scored as its
        server scores, on the metric the gate judges improvement by (the task's primary
        without one) and with the gate's bootstrap settings."""
        from loopml.evaluation.evaluate import PRIMARY
        from loopml.loop.served import compare_on, score_versions
        from loopml.registry.api import get_version
        from loopml.registry.gates import DifferenceCheck, ImprovementCheck, load_policy

        gate = load_policy(self.policy.gate)
        champion = get_version(f"{self.name}@champion", workspace=self.workspace)
        task = gate.task or champion.info.get("task") or "classification"
        judged = [
            c.metric for c in gate.checks if isinstance(c, ImprovementCheck | DifferenceCheck)
        ]
        scored = score_versions(self.name, [versus, *versions], rows, self.workspace)
        return compare_on(
            rows,
            scored,
            versus,
            task=task,
            metric=judged[0] if judged else PRIMARY[task],
            resamples=gate.resamples,
            level=gate.level,
            seed=gate.seed,
        )

    def _restore(self, spec: Any, harmful: int, version: int, reason: str) -> bool:
        """Make a version champion again in place of ``harmful``, as the deployment names
        its champion; False when something else replaced ``harmful`` meanwhile (nothing
        is changed then)."""
        from loopml.registry.api import set_alias

        if str(spec.champion).isdigit():
            return self._deploy(spec.model_copy(update={"champion": str(version)}), reason)
        moved = set_alias(
            self.name,
            spec.champion,
            version,
            reason=reason,
            action="rollback",
            expected=harmful,
            workspace=self.workspace,
        )
        return moved is not None

    def _from_pool(self, spec: Any) -> LoopStep | None:
        """The champion against the pool (the versions that were champion before, the most
        recent first) on the labels that arrived since the last look; a version better
        beyond the interval is gated and rolled out. None when the pool proposes nothing."""
        from loopml.loop.served import LABEL, labelled_rows
        from loopml.registry.api import history
        from loopml.registry.gates import load_policy

        pool = self.policy.pool
        if not pool.enabled:
            return None
        champion = _version(self.name, spec.champion, self.workspace)
        served = [
            event.to_version
            for event in history(self.name, workspace=self.workspace)
            if event.alias == "champion" and event.to_version is not None
        ]
        others = list(dict.fromkeys(v for v in reversed(served) if v != champion))[: pool.size]
        looked = self._last("pool")
        since = looked.at if looked is not None else 0.0
        # only rows made while the champion served: none of the versions trained on them
        promoted = self._last("promote")
        serving = (
            promoted.at
            if promoted is not None and promoted.version == champion
            else _champion_registered(self.name, self.workspace)
        )
        rows = labelled_rows(
            self.name, made_since=serving, labelled_since=since, workspace=self.workspace
        )
        if not others or rows.num_rows < pool.min_rows:
            return None
        try:
            found = self._compare(rows, others, champion)
        except LoopmlError as error:
            self.decide("pool", f"the pool could not be compared: {error}", champion)
            return None
        best = max(found, key=lambda v: found[v].low)
        metric = found[best].metric
        better = found[best].low > pool.min_gain
        evidence = {str(v): c.to_dict() for v, c in found.items()}
        shown = interval(found[best].gain, found[best].low, found[best].high)
        if not better:
            self.decide(
                "pool",
                f"no earlier version beats champion {champion} on {rows.num_rows:,} new labels "
                f"(best: version {best}, {metric} improvement {shown})",
                champion,
                rows=rows.num_rows,
                metric=metric,
                versions=evidence,
            )
            return None
        self.decide(
            "pool",
            f"version {best} beats champion {champion} on {rows.num_rows:,} new labels: "
            f"{metric} improvement {shown}; it goes through the gate",
            best,
            rows=rows.num_rows,
            metric=metric,
            versions=evidence,
            proposed=best,
        )
        data = rows.to_pandas()
        data = data.drop(columns=[c for c in data.columns if c.startswith("__") and c != LABEL])
        data = data.rename(columns={LABEL: load_policy(self.policy.gate).target})
        if not self._gate(best, data):
            return self.result("idle", f"version {best} from the pool was refused by the gate")
        return self._start_shadow(best, spec)

    def _note_rollback(self, spec: Any) -> None:
        rolled = spec.last_rollback
        if not rolled:
            return
        if any(
            d.action == "rolled_back" and d.evidence.get("at") == rolled.get("at")
            for d in self.past
        ):
            return
        self.decide(
            "rolled_back",
            f"canary {rolled['version']} was rolled back by its guardrails: {rolled['reason']}",
            int(rolled["version"]),
            **{key: value for key, value in rolled.items() if key != "version"},
        )

    def _last(self, action: str) -> DecisionRecord | None:
        found = [d for d in self.past + self.made if d.action == action]
        return found[-1] if found else None

    def _triggers(self) -> list[str]:
        triggers, reasons = self.policy.triggers, []
        firing = _firing(self.name, self.workspace)
        named = [rule for rule in triggers.alerts if rule in firing]
        stale = self._never_resolving(named)
        named = [rule for rule in named if rule not in stale]
        if named:
            reasons.append(f"alert {', '.join(named)} is firing")
        last = self._last("retrain")
        if triggers.every is not None:
            retrained = last is not None and last.as_of is not None
            since = last.as_of if retrained else _champion_registered(self.name, self.workspace)
            if not retrained and since > self.as_of:
                # registered after the loop's clock (a replay of the past): it has no age on
                # that clock, so the schedule counts from the first step that saw it
                started = self._last("schedule_started")
                if started is None or started.as_of is None:
                    self.decide(
                        "schedule_started",
                        f"the schedule counts from {_day(self.as_of)}: the champion was "
                        "registered after the loop's clock",
                    )
                    since = self.as_of
                else:
                    since = started.as_of
            if self.as_of - since >= triggers.every:
                older = "the last retrain" if retrained else "the champion"
                reasons.append(f"{older} is older than the schedule allows")
        if triggers.new_labels is not None:
            since = last.at if last is not None else _champion_registered(self.name, self.workspace)
            count = _labels_since(self.name, since, self.workspace)
            if count >= triggers.new_labels:
                reasons.append(f"{count:,} new labels since the last retrain")
        return reasons

    def _never_resolving(self, named: list[str]) -> set[str]:
        """The firing trigger alerts that never resolve (a drift rule whose alert a new
        champion did not resolve: a mistake in the alert rules, not news); they trigger no
        retrain, and the first step that sees one records it."""
        from loopml.monitoring.persistent import persistent_alerts

        if not named:
            return set()
        found = {a.rule: a for a in persistent_alerts(self.name, workspace=self.workspace)}
        stale = {rule for rule in named if rule in found}
        for rule in sorted(stale):
            alert = found[rule]
            if any(
                d.action == "trigger_ignored" and d.evidence.get("alert") == alert.alert_id
                for d in self.past + self.made
            ):
                continue
            self.decide(
                "trigger_ignored",
                f"alert {rule} has been open for {alert.windows} windows and a new champion "
                f"did not resolve it: it triggers no retrain ({alert.hint})",
                alert=alert.alert_id,
                rule=rule,
                windows=alert.windows,
                versions=list(alert.versions),
            )
        return stale

    def _cooldown(self) -> str:
        tried = [d for d in self.past + self.made if d.action in ("retrain", "retrain_failed")]
        last = tried[-1] if tried else None
        if not self.policy.cooldown or last is None or last.as_of is None:
            return ""
        left = last.as_of + self.policy.cooldown - self.as_of
        return (
            f"the cooldown after the last retrain has {left / 86400:.1f} days left"
            if left > 0
            else ""
        )

    def _retrain(self, reasons: list[str]) -> tuple[int | None, Any]:
        from loopml.pipeline.loading import load_pipeline

        params = self.policy.params(self.as_of)
        retrain = self.policy.retrain
        try:
            self.served = self._served()
            params = self.policy.params(self.as_of, self.served)
            pipeline = load_pipeline(retrain.pipeline)
            run = pipeline.run(params, workspace=self.workspace, progress=False)
            version = self._register(run)
        except Exception as error:  # recorded; the endpoint keeps its champion
            self.decide(
                "retrain_failed",
                f"retraining failed: {type(error).__name__}: {error}",
                triggers=reasons,
                params=params,
            )
            return None, None
        self.decide(
            "retrain",
            f"retrained as version {version} because {'; '.join(reasons)}",
            version,
            triggers=reasons,
            params=params,
            run=run.run_id,
            seconds=round(run.seconds, 2),
        )
        return version, run

    def _served(self) -> str | None:
        """The snapshot of what was served, with the labels posted so far, that the retrain
        reads as ``$served``; None when the policy trains on other data."""
        from loopml.data.from_log import from_log

        served = self.policy.retrain.served
        if served is None:
            return None
        snapshot = from_log(
            self.name,
            served.dataset,
            target=self.policy.retrain.target or "",
            base=served.base,
            time_column=served.time_column,
            workspace=self.workspace,
        )
        return snapshot.ref

    def _register(self, run: Any, description: str | None = None) -> int:
        from loopml.registry.api import register

        retrain = self.policy.retrain
        record_ = register(
            self.name,
            run=run.run_id,
            artifact=retrain.model,
            contract=_contract_of(self.name, self.workspace),
            reference=retrain.reference,
            target=retrain.target,
            description=description or f"retrained by the loop at {_day(self.as_of)}",
            card=False,
            workspace=self.workspace,
        )
        return record_.version

    def _refit(self, gated: int, run: Any) -> int:
        """The gated recipe trained on the whole window; the version to roll out: the refit
        one when it trains and is sane, else the gated one."""
        from loopml.pipeline.loading import load_pipeline

        params = self.policy.refit_params(self.as_of, self.served)
        source = self.policy.refit.pipeline or self.policy.retrain.pipeline
        try:
            refit = load_pipeline(source).run(params, workspace=self.workspace, progress=False)
            version = self._register(
                refit, f"refit of version {gated} (gated in run {run.run_id}) at {_day(self.as_of)}"
            )
        except Exception as error:  # recorded; the gated model rolls out instead
            self.decide(
                "refit_failed",
                f"refitting version {gated} failed: {type(error).__name__}: {error}; "
                f"version {gated} rolls out as gated",
                gated,
                params=params,
            )
            return gated
        problems = self._insane(version, gated, run)
        evidence = {"gated": gated, "gated_run": run.run_id, "run": refit.run_id}
        if problems:
            self.decide(
                "refit_refused",
                f"refit version {version} is not sane ({'; '.join(problems)}); version "
                f"{gated} rolls out as gated",
                version,
                problems=problems,
                params=params,
                **evidence,
            )
            return gated
        self._challenger(version, gated)
        self.decide(
            "refit",
            f"version {version} is version {gated}'s recipe refit on the whole window, "
            f"its newest data included",
            version,
            params=params,
            seconds=round(refit.seconds, 2),
            gate=self._last("gate_passed").evidence.get("checks"),
            **evidence,
        )
        return version

    def _insane(self, version: int, gated: int, run: Any) -> list[str]:
        """What is wrong with a refit model, on the gate's rows: inputs other than the gated
        model's, scores that are missing, constant or (for a classifier) not probabilities,
        or single-row latency far above the gated model's."""
        import numpy as np

        from loopml.evaluation.scoring import feature_frame, scores
        from loopml.registry.api import get_version, load

        data = run[self.policy.retrain.evaluation]
        refit, first = (
            get_version(f"{self.name}@{v}", workspace=self.workspace) for v in (version, gated)
        )
        problems = []
        if refit.info.get("features") != first.info.get("features"):
            problems.append("it reads other columns than the gated model")
            return problems
        task = first.info.get("task") or "classification"
        models = [load(r.ref, workspace=self.workspace) for r in (refit, first)]
        exclude = [self.policy.retrain.target or ""]
        found = scores(models[0], data, task, exclude, "refit model")
        if not np.all(np.isfinite(found)):
            problems.append("some of its scores are missing or infinite")
        elif len(found) > 1 and np.ptp(found) == 0:
            problems.append(f"it gives every row the same score {found[0]:.4g}")
        elif task == "classification" and (found.min() < 0 or found.max() > 1):
            problems.append("its scores are not probabilities")
        rows = feature_frame(models[1], data, exclude)
        ratio = self.policy.refit.max_latency_ratio
        mine, theirs = _median_latencies(models, rows)
        if mine > ratio * theirs + 1.0:
            problems.append(
                f"its median single-row latency {mine:.3g} ms is above {ratio:g}x the gated "
                f"model's {theirs:.3g} ms"
            )
        return problems

    def _challenger(self, version: int, gated: int) -> None:
        from loopml.registry.api import set_alias

        set_alias(
            self.name,
            "challenger",
            version,
            reason=f"the loop: refit of gated version {gated}",
            action="promote",
            workspace=self.workspace,
        )

    def _unchanged(self, version: int, run: Any) -> bool:
        """Whether the candidate's scores on the gate's rows match the champion's within the
        rollout's tolerance (relative to the scores' size); if so, it is recorded as
        unchanged and goes no further."""
        import numpy as np

        from loopml.evaluation.scoring import scores
        from loopml.registry.api import get_version, load

        data = run[self.policy.retrain.evaluation]
        try:
            champion = get_version(f"{self.name}@champion", workspace=self.workspace)
        except LoopmlError:
            return False
        if champion.version == version or data is None or not len(data):
            return False
        task = champion.info.get("task") or "classification"
        exclude = [self.policy.retrain.target or ""]
        mine, theirs = (
            scores(load(ref, workspace=self.workspace), data, task, exclude, "model")
            for ref in (f"{self.name}@{version}", champion.ref)
        )
        difference = float(np.max(np.abs(mine - theirs)))
        scale = 1.0 + float(np.max(np.abs(theirs)))
        tolerance = self.policy.rollout.unchanged_tolerance
        if difference > tolerance * scale:
            return False
        self.decide(
            "unchanged",
            f"candidate {version} scores the {len(data)} gate rows as champion "
            f"{champion.version} does (largest difference {difference:.3g}): not rolled out",
            version,
            champion=champion.version,
            max_difference=difference,
            tolerance=tolerance,
            rows=len(data),
        )
        return True

    def _backtest(self, version: int, newest: Any) -> tuple[Any, list[dict[str, Any]]] | None:
        """With ``backtest.folds`` above one: the recipe judged on rolling-origin folds, the
        newest (the candidate on the gate's rows) and each one before it (the recipe trained
        on the window before that fold), against the version that was champion when the fold
        began, pooled in one paired bootstrap. Returns the pooled evaluation and the folds'
        figures; None for one fold. Folds the data does not reach are left out and said."""
        from loopml.evaluation.evaluate import PRIMARY
        from loopml.evaluation.folds import evaluate_folds
        from loopml.registry.api import get_version
        from loopml.registry.gates import DifferenceCheck, ImprovementCheck, load_policy

        wanted = self.policy.backtest.folds
        if wanted <= 1:
            return None
        gate = load_policy(self.policy.gate)
        champion = get_version(f"{self.name}@{gate.against}", workspace=self.workspace)
        task = gate.task or champion.info.get("task") or "classification"
        judged = [
            c.metric for c in gate.checks if isinstance(c, ImprovementCheck | DifferenceCheck)
        ]
        folds = [self._fold(0, self.as_of, f"{self.name}@{version}", champion.version, newest)]
        left_out, moment = [], self.as_of
        for index in range(1, wanted):
            moment = back(moment, self.policy.retrain.validation)
            found = self._past_fold(index, moment)
            if isinstance(found, str):
                left_out.append({"index": index, "left_out": found})
            else:
                folds.append(found)
        pooled, results = evaluate_folds(
            [fold for fold, _ in folds],
            task=task,
            against=gate.against,
            metric=judged[0] if judged else PRIMARY[task],
            resamples=gate.resamples,
            level=gate.level,
            seed=gate.seed,
        )
        shown = [
            {**result.to_dict(), **facts} for result, (_, facts) in zip(results, folds, strict=True)
        ]
        return pooled, shown + left_out

    def _past_fold(self, index: int, moment: float) -> tuple[Any, dict[str, Any]] | str:
        """Fold ``index``: the recipe trained as a retrain at ``moment`` would be, against the
        version that was champion when the fold began; why it is left out when the data holds
        no rows for it, or that version had trained on them (it would win unfairly)."""
        from loopml.pipeline.loading import load_pipeline

        start, end = self._validation(moment)
        window = f"{_day(start)[:10]}..{_day(end)[:10]}"
        baseline = self._champion_at(start)
        trained = self._trained_until(baseline)
        if start < trained:
            return (
                f"{window}: version {baseline}, champion then, was trained on data up to "
                f"{_day(trained)[:10]}"
            )
        params = self.policy.params(moment, self.served)
        retrain = self.policy.retrain
        try:
            run = load_pipeline(retrain.pipeline).run(
                params, workspace=self.workspace, progress=False
            )
            rows, model = run[retrain.evaluation], run[retrain.model]
        except Exception as error:  # said in the evidence; the fold is left out
            return f"{window}: the pipeline failed: {type(error).__name__}: {error}"
        if rows is None or not len(rows) or rows[retrain.target or ""].nunique() < 2:
            return f"{window}: the data holds no labelled rows of two kinds for it"
        found = self._fold(index, moment, model, baseline, rows)
        found[1]["run"] = run.run_id
        return found

    def _trained_until(self, version: int) -> float:
        """Where a version's training data ends on the loop's clock: a refit's at its data's
        end, a retrained candidate's at its validation's start; a version the loop did not
        make was trained before it was registered, and before the loop's first step."""
        from loopml.registry.api import get_version

        made = [
            d
            for d in self.past + self.made
            if d.version == version and d.action in ("refit", "retrain") and d.as_of is not None
        ]
        if made:
            _, validation, end = self.policy.window(made[0].as_of)
            return end if made[0].action == "refit" else validation
        registered = get_version(f"{self.name}@{version}", workspace=self.workspace).created_at
        clocks = [d.as_of for d in self.past + self.made if d.as_of is not None]
        # registered before the loop's clock: not trained on later data; else (a replay of
        # the past) the loop's first step is all that is known
        return min([registered, *clocks, self.as_of])

    def _fold(
        self, index: int, moment: float, candidate: Any, baseline: int, rows: Any
    ) -> tuple[Any, dict[str, Any]]:
        """A fold of the backtest: the rows' labels, the candidate's scores (a model, or a
        version's reference) and the baseline version's."""
        from loopml.evaluation.folds import Fold
        from loopml.evaluation.scoring import scores
        from loopml.registry.api import get_version, load

        target = self.policy.retrain.target or ""
        record = get_version(f"{self.name}@{baseline}", workspace=self.workspace)
        task = record.info.get("task") or "classification"
        models = [
            load(m, workspace=self.workspace) if isinstance(m, str) else m
            for m in (candidate, record.ref)
        ]
        found = [scores(m, rows, task, [target], "model") for m in models]
        start, end = self._validation(moment)
        name = f"{_day(start)[:10]}..{_day(end)[:10]}"
        facts = {"index": index, "baseline": baseline}
        return Fold(name, rows[target].reset_index(drop=True), *found), facts

    def _validation(self, moment: float) -> tuple[float, float]:
        """The validation window of a retrain dated ``moment``: [start, end)."""
        return self.policy.window(moment)[1:]

    def _champion_at(self, moment: float) -> int:
        """The version that was champion at a moment of the loop's clock, as the loop's
        promotions and rollbacks tell it (the champion before the first of them, before)."""
        moves = [
            d
            for d in self.past + self.made
            if d.action in ("promote", "rollback") and d.version is not None
        ]
        before = [d for d in moves if d.as_of is not None and d.as_of <= moment]
        if before:
            return int(before[-1].version)
        first = next((d for d in moves if d.action == "promote"), None)
        if first is not None and first.evidence.get("previous") is not None:
            return int(first.evidence["previous"])
        return _version(self.name, "champion", self.workspace)

    def _gate(self, version: int, data: Any, backtest: Any = None) -> bool:
        from loopml.registry.promotion import promote

        pooled, folds = backtest if backtest is not None else (None, [])
        outcome = promote(
            self.name,
            version,
            to="challenger",
            policy=self.policy.gate,
            data=data,
            reason="passed the loop's gate",
            backtest=pooled,
            workspace=self.workspace,
        )
        checks = [check.to_dict() for check in outcome.checks]
        failed = [c["detail"] for c in checks if not c["passed"]]
        extra = {"folds": folds} if backtest is not None else {}
        if outcome.passed:
            self.decide(
                "gate_passed",
                f"candidate {version} passed the gate against {outcome.compared or 'nothing'}",
                version,
                checks=checks,
                rows=len(data),
                **extra,
            )
        else:
            self.decide(
                "gate_failed",
                f"candidate {version} failed the gate: {'; '.join(failed)}",
                version,
                checks=checks,
                rows=len(data),
                **extra,
            )
        return outcome.passed

    def _start_shadow(self, version: int, spec: Any) -> LoopStep:

        if self.policy.rollout.shadow_requests == 0:
            return self._start_canary(version, spec, {})
        if not self._deploy(spec.model_copy(update={"shadow": str(version)}), "loop: shadow"):
            return self._changed_meanwhile(version)
        self.decide("shadow", f"candidate {version} shadows the champion", version)
        return self.result("shadow", f"candidate {version} is shadowing")

    def _deploy(self, spec: Any, reason: str) -> bool:
        """Deploy ``spec`` if the deployment is still the one this step decided on (False,
        and nothing changed, when someone changed it meanwhile)."""
        from loopml.serving.deployments import deploy

        revision = deploy(
            self.name, spec, reason=reason, expected=self.revision, workspace=self.workspace
        )
        if revision is None:
            return False
        self.revision = revision
        return True

    def _changed_meanwhile(self, version: int) -> LoopStep:
        """Someone changed the deployment while this step decided on it: nothing is moved;
        the next step decides again on what serves then."""
        return self.result(
            "idle", f"the deployment changed while the step ran; candidate {version} waits"
        )

    # -- a shadow ---------------------------------------------------------------------------

    def shadowing(self, version: int, spec: Any) -> LoopStep:
        started = self._started("shadow", version)
        seen = _answered(self.name, "shadow", version, started, self.workspace)
        wanted = self.policy.rollout.shadow_requests
        if seen["requests"] < wanted:
            return self.result(
                "shadow", f"candidate {version} shadowed {seen['requests']} of {wanted} requests"
            )
        return self._start_canary(version, spec.model_copy(update={"shadow": None}), seen)

    def _started(self, action: str, version: int) -> float:
        found = [d for d in self.past + self.made if d.action == action and d.version == version]
        return found[-1].at if found else 0.0

    def _start_canary(self, version: int, spec: Any, shadowed: dict[str, Any]) -> LoopStep:
        from loopml.serving.deployments import Canary

        rollout = self.policy.rollout
        canary = Canary(
            version=str(version), fraction=rollout.canary_fraction, guardrails=rollout.guardrails
        )
        if not self._deploy(spec.model_copy(update={"canary": canary}), "loop: canary"):
            return self._changed_meanwhile(version)
        self.decide(
            "canary",
            f"candidate {version} answers {rollout.canary_fraction:.0%} of the traffic as a canary",
            version,
            shadow=shadowed,
        )
        return self.result("canary", f"candidate {version} is a canary")

    # -- a canary ---------------------------------------------------------------------------

    def canary(self, version: int, spec: Any) -> LoopStep:
        started = spec.canary.started_at or self._started("canary", version)
        seen = _answered(self.name, "canary", version, started, self.workspace)
        wanted = self.policy.rollout.canary_requests
        if seen["requests"] < wanted:
            return self.result(
                "canary", f"canary {version} answered {seen['requests']} of {wanted} requests"
            )
        return self._promote(version, spec, seen)

    def _promote(self, version: int, spec: Any, seen: dict[str, Any]) -> LoopStep:
        from loopml.registry.api import get_version, set_alias

        before = get_version(f"{self.name}@{spec.champion}", workspace=self.workspace).version
        champion = _answered(
            self.name, "champion", before, spec.canary.started_at or 0.0, self.workspace
        )
        pinned = str(spec.champion).isdigit()  # a version number, not an alias to move
        update = {"canary": None, **({"champion": str(version)} if pinned else {})}
        # Each move only from what this step decided on: a canary its guardrails ended, or a
        # champion rolled back meanwhile, is never overwritten by the promotion.
        ended = self._deploy(spec.model_copy(update=update), "loop: promoted")
        moved = ended and (
            pinned
            or set_alias(
                self.name,
                spec.champion,
                version,
                reason=f"the loop: canary held its guardrails over {seen['requests']} requests",
                action="promote",
                expected=before,
                workspace=self.workspace,
            )
        )
        if not moved:
            what = f"{self.name}@{spec.champion}" if ended else "the deployment"
            self.decide(
                "promote_skipped",
                f"{what} changed while the canary of version {version} was judged; not "
                "promoted, judged again from what serves now",
                version,
                previous=before,
            )
            return self.result("idle", f"version {version} was not promoted")
        self.decide(
            "promote",
            f"version {version} is champion (was {before}) after {seen['requests']} canary "
            "requests",
            version,
            canary=seen,
            champion=champion,
            previous=before,
        )
        return self.result("idle", f"version {version} is champion")


def _median_latencies(models: list[Any], rows: Any, count: int = 50) -> list[float]:
    """Each model's median time, in milliseconds, to predict one row, on one thread as a
    server process runs it; the models take turns row by row, so a busy machine slows them
    alike."""
    import numpy as np
    from threadpoolctl import threadpool_limits

    sample = rows.sample(n=min(count, len(rows)), random_state=0, replace=len(rows) < count)
    calls = [m.predict_proba if hasattr(m, "predict_proba") else m.predict for m in models]
    times: list[list[float]] = [[] for _ in models]
    with threadpool_limits(1):
        for call in calls:
            call(sample.iloc[[0]])  # warm
        for index in range(len(sample)):
            row = sample.iloc[[index]]
            for call, found in zip(calls, times, strict=True):
                started = time.perf_counter()
                call(row)
                found.append((time.perf_counter() - started) * 1000)
    return [float(np.median(found)) for found in times]


def _day(moment: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _firing(name: str, workspace: Workspace) -> set[str]:
    from loopml.monitoring.rules import PREFIX
    from loopml.serving.deployments import alerts

    return {
        alert.kind.removeprefix(PREFIX)
        for alert in alerts(name, open_only=True, workspace=workspace)
        if alert.kind.startswith(PREFIX)
    }


def _champion_registered(name: str, workspace: Workspace) -> float:
    from loopml.registry.api import get_version

    return get_version(f"{name}@champion", workspace=workspace).created_at


def _contract_of(name: str, workspace: Workspace) -> Any:
    from loopml.registry.api import get_version

    return get_version(f"{name}@champion", workspace=workspace).info.get("contract")


def _labels_since(name: str, since: float, workspace: Workspace) -> int:
    from loopml.events.traffic import Traffic, seal_all

    seal_all(workspace)
    with Traffic(name, since, time.time() + 1, workspace) as traffic:
        if not traffic.has("feedback", "status"):
            return 0
        (count,) = traffic.scalar(
            f"SELECT count(*) FROM feedback WHERE status = 'ok' AND {traffic.bounds()}"
        )
    return int(count)


def _answered(
    name: str, role: str, version: int, since: float, workspace: Workspace
) -> dict[str, Any]:
    """Requests a version answered in a role since a moment, with its error rate and p99."""
    from loopml.events.traffic import Traffic

    with Traffic(name, since, time.time() + 1, workspace) as traffic:
        requests, errors, quantiles = traffic.requests(
            f"role = '{role}' AND version = {int(version)}"
        )
    return {
        "requests": requests,
        "error_rate": errors / requests if requests else None,
        "latency_p99_ms": quantiles[2] if quantiles else None,
    }
