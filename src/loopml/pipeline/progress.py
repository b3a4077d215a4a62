"""A Rich progress bar over a pipeline's steps, on stderr, for terminals only."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from loopml.pipeline.graph import Pipeline
    from loopml.pipeline.result import StepReport

Observer = Callable[[str, "StepReport"], None]


def bar(console: Console) -> Progress:
    """The progress bar style shared by pipelines and sweeps."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@contextmanager
def step_progress(pipeline: Pipeline, show: bool, observer: Observer | None) -> Iterator[Observer]:
    """Yield the function the runner calls as steps start and finish."""
    console = Console(stderr=True)
    if not show or not console.is_terminal:
        yield observer or (lambda event, report: None)
        return
    running: list[str] = []
    with bar(console) as progress:
        task = progress.add_task(pipeline.name, total=len(pipeline.steps), detail="")

        def notify(event: str, report: StepReport) -> None:
            if event == "started":
                running.append(report.name)
            else:
                running.remove(report.name)
                progress.advance(task)
            progress.update(task, detail=", ".join(running))
            if observer is not None:
                observer(event, report)

        yield notify


@contextmanager
def count_progress(label: str, total: int, show: bool | None) -> Iterator[Callable[[str], None]]:
    """A bar counting finished items (sweep trials); yields advance(detail)."""
    console = Console(stderr=True)
    if show is False or not console.is_terminal:
        yield lambda detail: None
        return
    with bar(console) as progress:
        task = progress.add_task(label, total=total, detail="")
        yield lambda detail: progress.update(task, advance=1, detail=detail)
