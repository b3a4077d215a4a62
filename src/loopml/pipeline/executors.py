"""Executors: where steps, sweep trials and other work run. One small protocol, three backends.

- ``inline``: in the calling thread, one thing at a time (the default; best for debugging);
- ``process`` or ``process:N``: a pool of N local worker processes (default: one per core);
- ``dask`` (a LocalCluster started for you) or ``dask://host:8786``: a Dask distributed
  cluster (``pip install 'loopml[dask]'``).

Work sent to a process or a cluster must be picklable; the pipeline pickles each step with
cloudpickle, so functions defined in scripts and notebooks travel too.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol, TypeVar, runtime_checkable

from loopml.errors import ExecutorError, UsageError, missing_dependency

T = TypeVar("T")

KNOWN = "'inline', 'process', 'process:N', 'dask', 'dask://host:port'"
CONNECT_TIMEOUT = 10.0


@runtime_checkable
class Executor(Protocol):
    """Runs functions somewhere and hands back futures."""

    name: str
    workers: int
    remote: bool  # work leaves this process, so it must be pickled

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        """Start fn(*args); the future holds its result or its exception."""
        ...

    def shutdown(self) -> None:
        """Release workers and connections; the executor cannot be used afterwards."""
        ...


class InlineExecutor:
    """Runs each function at once, in the calling thread."""

    name = "inline"
    workers = 1
    remote = False

    def __repr__(self) -> str:
        return "InlineExecutor()"

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
            future.set_exception(error)
        return future

    def shutdown(self) -> None:
        return None


class ProcessExecutor:
    """A pool of local worker processes.

    Workers are forked from a small server process (forkserver; spawn where there is none),
    never from the caller, so no lock or thread of the caller is inherited half-held, and
    the caller's script is not run again. Each worker limits the numeric libraries' thread
    pools (OpenMP, BLAS) to its share of the cores, unless those are set already.
    """

    name = "process"
    remote = True

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise UsageError(f"A process pool needs at least 1 worker, not {self.workers}.")
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        self._pool = ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=_worker_context(),
            initializer=_limit_threads,
            initargs=(threads,),
        )

    def __repr__(self) -> str:
        return f"ProcessExecutor(workers={self.workers})"

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _worker_context() -> Any:
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["loopml.pipeline.task"])  # also passes sys.path on
    return context


def _limit_threads(threads: int) -> None:
    """Runs first in each worker: libraries loaded later read the variables; those already
    loaded (by a script re-imported as the worker's main module) are limited directly."""
    if any(variable in os.environ for variable in THREAD_VARIABLES):
        return  # the user chose
    for variable in THREAD_VARIABLES:
        os.environ[variable] = str(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn depends on it
        return
    threadpool_limits(limits=threads)


class DaskExecutor:
    """A Dask distributed client: to the scheduler at ``address``, or to a LocalCluster."""

    name = "dask"
    remote = True

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        timeout: float = CONNECT_TIMEOUT,
    ) -> None:
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise missing_dependency("distributed", "dask", "The Dask executor") from None
        self.address = address
        self._cluster = None
        if address is None:
            self._cluster = LocalCluster(
                n_workers=workers or os.cpu_count() or 1,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                host="127.0.0.1",
                silence_logs=logging.ERROR,
            )
            self._client = Client(self._cluster)
        else:
            self._client = _connect(Client, address, timeout)
        self.workers = max(1, len(self._client.scheduler_info().get("workers", {})))

    def __repr__(self) -> str:
        return f"DaskExecutor(address={self._client.scheduler.address!r}, workers={self.workers})"

    def submit(self, fn: Callable[..., T], /, *args: Any) -> Future[T]:
        future: Future[T] = Future()
        remote = self._client.submit(fn, *args, pure=False)
        remote.add_done_callback(lambda done: _transfer(done, future))
        return future

    def shutdown(self) -> None:
        self._client.close()
        if self._cluster is not None:
            self._cluster.close()


def _connect(client_class: Any, address: str, timeout: float) -> Any:
    try:
        return client_class(address, timeout=timeout)
    except (OSError, TimeoutError) as error:
        raise ExecutorError(
            f"Cannot reach the Dask scheduler at {address} within {timeout:g} s "
            f"({type(error).__name__}: {error}). Start one with 'dask scheduler', fix "
            "LOOPML_EXECUTOR, or use executor='dask' to start a local cluster."
        ) from None


def _transfer(remote: Any, future: Future[Any]) -> None:
    try:
        future.set_result(remote.result())
    except BaseException as error:
        future.set_exception(error)


def executor_from(spec: Executor | str) -> tuple[Executor, bool]:
    """The executor a spec names, and whether the caller owns it (and must shut it down)."""
    if not isinstance(spec, str):
        if not isinstance(spec, Executor):
            raise UsageError(f"Not an executor: {spec!r}. Use one of {KNOWN}, or an Executor.")
        return spec, False
    text = spec.strip()
    kind, _, rest = text.partition(":")
    if text == "inline":
        return InlineExecutor(), True
    if kind == "process":
        return ProcessExecutor(_workers(rest, text)), True
    if text == "dask":
        return DaskExecutor(), True
    if kind in ("dask", "tcp", "tls") and rest.startswith("//"):
        address = ("tcp:" if kind == "dask" else f"{kind}:") + rest
        return DaskExecutor(address), True
    raise UsageError(f"Unknown executor {spec!r}. Use one of {KNOWN}.")


def _workers(text: str, spec: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise UsageError(
            f"Executor {spec!r}: the number of worker processes must be a whole number of at "
            "least 1, like 'process:4'."
        )
    return int(text)
