"""Running a pipeline: a tracked run with one child run per step, cached by content.

The driving process owns all tracking: it starts each step's run, sends the step to the
executor, stores the returned outputs as artifacts, links lineage and records the cache
entry. Workers only compute. A step's cache key is the hash of its code, its parameters
(snapshots and files by content) and the hashes of its inputs.
"""

from __future__ import annotations

import json
import pickle
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from loopml.errors import (
    ArtifactNotFoundError,
    InvalidValueError,
    RunStateError,
    StepFailedError,
    UsageError,
)
from loopml.hashing import sha256_json
from loopml.pipeline.context import PruneRule
from loopml.pipeline.executors import Executor, executor_from
from loopml.pipeline.graph import Pipeline
from loopml.pipeline.params import bind, display, token
from loopml.pipeline.result import PipelineResult, StepReport
from loopml.pipeline.step import MISSING, Step
from loopml.pipeline.task import Outcome, Pickled, Task, pack, run_packed, run_task
from loopml.store.steps import CacheEntry, StoredOutput
from loopml.tracking import operations as tracking_ops
from loopml.tracking.api import (
    child_runs,
    get_run,
    list_artifacts,
    load_artifact,
    metric_summaries,
    start_run,
)
from loopml.tracking.artifacts import Content
from loopml.tracking.run import Run
from loopml.workspace import Workspace, current_workspace

KEY_FORMAT = 1
PARAMS_ARTIFACT = "pipeline.params"
OUTPUT_TYPES = "loopml.output_types"
Observer = Callable[[str, StepReport], None]  # ("started" | "finished", report)


@dataclass
class _Slot:
    """An output the runner knows: its hash, and its value or bytes once in memory."""

    digest: str
    size: int
    value: Any = MISSING
    data: bytes | None = None


@dataclass
class _Running:
    step: Step
    run: Run
    report: StepReport
    key: str


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None,
    *,
    cache: bool = True,
    executor: Executor | str | None = None,
    experiment: str | None = None,
    seed: int | None = None,
    workspace: Workspace | None = None,
    progress: bool | None = None,
    reuse: Mapping[str, CacheEntry] | None = None,
    tags: Mapping[str, Any] | None = None,
    observer: Observer | None = None,
    pruning: PruneRule | None = None,
    parent: Run | None = None,
) -> PipelineResult:
    """Run a pipeline; see Pipeline.run. A sweep adds a parent run and a pruning rule."""
    workspace = workspace or current_workspace()
    values = bind(pipeline, params or {}, workspace)
    chosen, owned = executor_from(executor or workspace.settings.executor)
    try:
        with _progress(pipeline, progress, observer) as notify:
            runner = _Runner(
                pipeline, values, workspace, chosen, cache, reuse or {}, notify, pruning
            )
            return runner.run(experiment, seed, tags or {}, parent)
    finally:
        if owned:
            chosen.shutdown()


def resume_pipeline(
    pipeline: Pipeline,
    run_id: str,
    *,
    executor: Executor | str | None = None,
    workspace: Workspace | None = None,
    progress: bool | None = None,
) -> PipelineResult:
    """Run a failed or killed pipeline run again, reusing its finished steps' outputs."""
    workspace = workspace or current_workspace()
    record = get_run(run_id, workspace=workspace)
    if record.tags.get("loopml.kind") != "pipeline":
        raise UsageError(f"Run {record.id} is not a pipeline run; only pipeline runs resume.")
    if record.status not in ("failed", "killed"):
        raise RunStateError(
            f"Pipeline run {record.id} is {record.status}; only failed or killed runs resume. "
            "Run the pipeline again instead (unchanged steps come from the cache)."
        )
    params = load_artifact(record.id, PARAMS_ARTIFACT, workspace=workspace)
    return run_pipeline(
        pipeline,
        params,
        cache=record.tags.get("loopml.cache") != "off",
        executor=executor,
        experiment=record.experiment,
        seed=record.seed,
        workspace=workspace,
        progress=progress,
        reuse=finished_steps(record.id, workspace),
        tags={"loopml.resumed_from": record.id},
    )


def finished_steps(run_id: str, workspace: Workspace) -> dict[str, CacheEntry]:
    """The cache entries of the steps of a pipeline run that finished, by cache key."""
    entries = {}
    for child in child_runs(run_id, workspace=workspace):
        key = child.tags.get("loopml.cache_key")
        if child.status != "finished" or not key:
            continue
        types = output_types(child.tags)
        outputs = tuple(
            StoredOutput(a.name, a.digest, a.size, types.get(a.name, ""))
            for a in list_artifacts(child.id, workspace=workspace)
            if a.direction == "output"
        )
        name = child.tags.get("loopml.step", child.name or "")
        entries[key] = CacheEntry(key, name, child.id, outputs, child.end_time or 0.0)
    return entries


def output_types_tag(types: dict[str, str]) -> dict[str, str]:
    """The tag a step run records its outputs' types in (none when unknown)."""
    return {OUTPUT_TYPES: json.dumps(types, sort_keys=True)} if types else {}


def output_types(tags: Mapping[str, str]) -> dict[str, str]:
    """Output name -> 'module.Class', from a step run's tags."""
    return json.loads(tags.get(OUTPUT_TYPES, "{}"))


class _Runner:
    def __init__(
        self,
        pipeline: Pipeline,
        values: dict[str, Any],
        workspace: Workspace,
        executor: Executor,
        cache: bool,
        reuse: Mapping[str, CacheEntry],
        notify: Observer,
        pruning: PruneRule | None,
    ) -> None:
        self.pipeline = pipeline
        self.values = values
        self.tokens = {name: token(value) for name, value in values.items()}
        self.workspace = workspace
        self.executor = executor
        self.cache = cache
        self.reuse = reuse
        self.notify = notify
        self.pruning = pruning
        self.slots: dict[str, _Slot] = {}
        self.reports = {s.name: StepReport(s.name, "skipped") for s in pipeline.order}
        self.failed: StepReport | None = None
        self.pruned: StepReport | None = None
        self.reports_of_objective: list[tuple[int, float]] = []
        self.seed: int | None = None
        self.run_record: Run | None = None

    # --- the pipeline run ---------------------------------------------------------------

    def run(
        self,
        experiment: str | None,
        seed: int | None,
        tags: Mapping[str, Any],
        parent: Run | None = None,
    ) -> PipelineResult:
        started = time.perf_counter()
        self.seed = seed
        with start_run(
            experiment,
            name=self.pipeline.name,
            params={key: display(value) for key, value in self.values.items()},
            tags={
                "loopml.kind": "pipeline",
                "loopml.pipeline": self.pipeline.ref or self.pipeline.name,
                "loopml.cache": "on" if self.cache else "off",
                "loopml.executor": self.executor.name,
                **tags,
            },
            seed=seed,
            parent=parent,
            workspace=self.workspace,
        ) as run:
            self.run_record = run
            self._save_params(run)
            self._link_snapshots(run)
            self._drive()
            status = "failed" if self.failed else "pruned" if self.pruned else "finished"
            if self.pruned is not None:
                run.set_tag("loopml.pruned", self.pruned.name)
            if self.failed is not None:
                run.end("failed", error=self._failure_text())
        result = PipelineResult(
            pipeline=self.pipeline.name,
            run_id=run.id,
            status=status,
            steps=[self.reports[s.name] for s in self.pipeline.order],
            params=self.values,
            seconds=time.perf_counter() - started,
            load=self.workspace.artifacts.get_bytes,
            values={n: s.value for n, s in self.slots.items() if s.value is not MISSING},
            intermediate=self.reports_of_objective,
        )
        if self.failed is not None:
            raise StepFailedError(
                f"{self._failure_summary()} Pipeline run {run.id} failed; see its traceback with "
                f"'loopml runs show {run.id}', fix the step, then 'loopml run resume {run.id}'.",
                run_id=run.id,
                step=self.failed.name,
                result=result,
            ) from None
        return result

    def _save_params(self, run: Run) -> None:
        """Keep the exact values (snapshots by reference) so the run can be resumed."""
        stored = {
            key: value.ref if _is_snapshot(value) else value for key, value in self.values.items()
        }
        try:
            run.log_artifact(stored, name=PARAMS_ARTIFACT)
        except InvalidValueError:  # unpicklable values: resume says it cannot
            run.set_tag("loopml.resumable", "no: its parameters cannot be pickled")

    def _failure_summary(self) -> str:
        report = self.failed
        step = self.pipeline.step(report.name)
        first_line = (report.message or "").strip().splitlines()[:1] or ["no message"]
        return f"{step.where.capitalize()} failed: {first_line[0]}"

    def _failure_text(self) -> str:
        return f"{self._failure_summary()}\n\n{self.failed.error or ''}".strip()

    # --- scheduling ---------------------------------------------------------------------

    def _drive(self) -> None:
        pending = list(self.pipeline.order)
        running: dict[Future[Outcome], _Running] = {}
        while pending or running:
            progressed = self._launch_ready(pending, running)
            if running and not progressed:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    self._finish(running.pop(future), future)
            elif not running and not progressed:
                break  # nothing can start: an upstream step failed

    def _launch_ready(self, pending: list[Step], running: dict[Future[Outcome], _Running]) -> bool:
        progressed = False
        for item in list(pending):
            if self.failed is not None or self.pruned is not None:
                return progressed
            if not all(p.source in self.slots or p.source in self.values for p in item.parameters):
                continue
            pending.remove(item)
            progressed = True
            key = self._key(item)
            if self._from_store(item, key):
                continue
            started = self._start(item, key)
            future = self.executor.submit(*self._work(item, started.run))
            if future.done():
                self._finish(started, future)
            else:
                running[future] = started
        return progressed

    def _key(self, item: Step) -> str:
        inputs, params = {}, {}
        for parameter in item.parameters:
            if parameter.source in self.slots:
                inputs[parameter.name] = self.slots[parameter.source].digest
            else:
                params[parameter.name] = self.tokens[parameter.source]
        return sha256_json(
            {
                "format": KEY_FORMAT,
                "step": item.name,
                "outputs": item.outputs,
                "code": item.code_digest,
                "params": params,
                "inputs": inputs,
            }
        )

    # --- cache ----------------------------------------------------------------------------

    def _from_store(self, item: Step, key: str) -> bool:
        """Take the step's outputs from the run being resumed or the cache, if there."""
        entry, status = self.reuse.get(key), "reused"
        if entry is None and self.cache and item.cache:
            entry, status = self._cached(key), "cached"
        if entry is None or {o.name for o in entry.outputs} != set(item.outputs):
            return False
        report = self.reports[item.name]
        report.status, report.key, report.cached_from = status, key, entry.run_id
        report.outputs = {o.name: o.digest for o in entry.outputs}
        inputs = self._inputs(item)
        for output in entry.outputs:
            self.slots[output.name] = _Slot(output.digest, output.size)
        hit = {
            "loopml.cache": "hit",
            "loopml.cached_from": entry.run_id,
            **output_types_tag({o.name: o.type for o in entry.outputs if o.type}),
        }
        run = self._start_run(item, key, hit)
        report.run_id = run.id
        self.notify("started", report)
        self._replay_metrics(entry.run_id, run)
        outputs = [(o.name, Content(o.digest, "pickle", o.size, None)) for o in entry.outputs]
        run.finish(inputs=inputs, outputs=outputs)
        self.notify("finished", report)
        return True

    def _replay_metrics(self, source_id: str, run: Run) -> None:
        """A cached step's metrics, as its earlier run last logged them, on this run too."""
        for summary in metric_summaries(source_id, workspace=self.workspace):
            if summary.key.startswith("loopml."):
                continue
            for target in (run, self.run_record):
                target.log_metric(summary.key, summary.value, summary.step)

    def _cached(self, key: str) -> CacheEntry | None:
        entry = tracking_ops.find_cached(self.workspace.metadata, key)
        if entry is None:
            return None
        if all(self.workspace.artifacts.exists(o.digest) for o in entry.outputs):
            return entry
        tracking_ops.forget_cached(self.workspace.metadata, key)
        return None

    # --- running a step -------------------------------------------------------------------

    def _start(self, item: Step, key: str) -> _Running:
        tags = {"loopml.cache": "miss" if self.cache and item.cache else "off"}
        run = self._start_run(item, key, tags)
        report = self.reports[item.name]
        report.status, report.key, report.run_id = "running", key, run.id
        self.notify("started", report)
        return _Running(item, run, report, key)

    def _start_run(self, item: Step, key: str, tags: dict[str, str]) -> Run:
        return start_run(
            name=item.name,
            parent=self.run_record,
            tags={"loopml.kind": "step", "loopml.step": item.name, "loopml.cache_key": key, **tags},
            seed=self.seed,
            workspace=self.workspace,
        )

    def _inputs(self, item: Step) -> list[tuple[str, Content]]:
        """What a step reads, for lineage: upstream outputs and snapshots, by hash."""
        found: dict[str, Content] = {}
        for parameter in item.parameters:
            slot = self.slots.get(parameter.source)
            if slot is not None:
                found[parameter.source] = Content(slot.digest, "pickle", slot.size, None)
                continue
            value = self.values[parameter.source]
            if _is_snapshot(value):
                record = value.record
                found[value.ref] = Content(record.digest, "snapshot", record.size, value.ref)
        return list(found.items())

    def _link_snapshots(self, run: Run) -> None:
        for value in self.values.values():
            if _is_snapshot(value):
                record = value.record
                run.link_input(value.ref, record.digest, "snapshot", record.size, value.ref)

    def _work(self, item: Step, run: Run) -> tuple[Callable[[Any], Outcome], Any]:
        remote = self.executor.remote
        arguments = {p.name: self._argument(p.source, remote) for p in item.parameters}
        task = Task(item, arguments, seed=self.seed, keep_values=not remote, pruning=self.pruning)
        if remote:
            return run_packed, pack(task)
        return run_task, task

    def _argument(self, source: str, remote: bool) -> Any:
        slot = self.slots.get(source)
        if slot is None:
            return self.values[source]
        if not remote:
            if slot.value is MISSING:
                slot.value = pickle.loads(self._bytes(slot))
            return slot.value
        return Pickled(self._bytes(slot))

    def _bytes(self, slot: _Slot) -> bytes:
        if slot.data is None:
            try:
                slot.data = self.workspace.artifacts.get_bytes(slot.digest)
            except ArtifactNotFoundError as error:
                raise ArtifactNotFoundError(
                    f"{error} A cached step output is gone from the artifact store; run again "
                    "with cache off (--no-cache) to recompute it."
                ) from None
        return slot.data

    def _finish(self, started: _Running, future: Future[Outcome]) -> None:
        outcome = _outcome_of(future, started.step)
        report, run = started.report, started.run
        report.seconds, report.attempts = outcome.seconds, outcome.attempts
        tags = self._record(run, outcome)
        inputs = self._inputs(started.step)
        if not outcome.ok:
            report.status, report.message, report.error = "failed", outcome.message, outcome.error
            self.failed = self.failed or report
            run.finish("failed", tags=tags, inputs=inputs, error=outcome.error or outcome.message)
            self.notify("finished", report)
            return
        stored = self._store(started.step, outcome)
        report.status = "pruned" if outcome.pruned else "ran"
        report.outputs = {o.name: o.digest for o in stored}
        outputs = [(o.name, Content(o.digest, "pickle", o.size, None)) for o in stored]
        if outcome.pruned:
            self.pruned = self.pruned or report
            run.finish(tags={**tags, "loopml.pruned": "true"}, inputs=inputs, outputs=outputs)
        else:
            entry = CacheEntry(started.key, started.step.name, run.id, stored, time.time())
            run.finish(
                tags=tags,
                inputs=inputs,
                outputs=outputs,
                cache=entry,
            )
        self.notify("finished", report)

    def _record(self, run: Run, outcome: Outcome) -> dict[str, Any]:
        """Buffer what the step logged; return the tags to record with its end."""
        for key, value, step, moment in outcome.metrics:
            run.log_metric(key, value, step, timestamp=moment)
            self.run_record.log_metric(key, value, step, timestamp=moment)
        for step, value in outcome.reports:
            run.log_metric("loopml.intermediate", value, step)
        self.reports_of_objective.extend(outcome.reports)
        run.log_metrics(
            {"loopml.seconds": outcome.seconds, "loopml.cpu_seconds": outcome.cpu_seconds}
        )
        tags = {**outcome.tags, "loopml.attempts": outcome.attempts}
        return tags | output_types_tag(outcome.types)

    def _store(self, item: Step, outcome: Outcome) -> tuple[StoredOutput, ...]:
        stored = []
        for name in item.outputs:
            data = outcome.outputs[name]
            digest = self.workspace.artifacts.put_bytes(data)
            value = outcome.values[name] if outcome.values is not None else MISSING
            kept = data if value is MISSING else None
            self.slots[name] = _Slot(digest, len(data), value, kept)
            stored.append(StoredOutput(name, digest, len(data), outcome.types.get(name, "")))
        return tuple(stored)


def _outcome_of(future: Future[Outcome], item: Step) -> Outcome:
    try:
        return future.result()
    except BrokenProcessPool:
        message = (
            "its worker process died before it returned: killed, out of memory, or the "
            "script that runs the pipeline lacks the guard if __name__ == '__main__': (worker "
            "processes import it again). Run it with the inline executor to see where."
        )
    except Exception as error:
        message = f"the executor could not run it: {type(error).__name__}: {error}"
    return Outcome(
        ok=False,
        attempts=1,
        started=time.time(),
        seconds=0.0,
        cpu_seconds=0.0,
        message=message,
        error=message,
    )


def _is_snapshot(value: Any) -> bool:
    return getattr(getattr(value, "record", None), "digest", None) is not None


def _progress(pipeline: Pipeline, progress: bool | None, observer: Observer | None) -> Any:
    from loopml.pipeline.progress import step_progress

    show = sys.stderr.isatty() if progress is None else progress
    return step_progress(pipeline, show, observer)
