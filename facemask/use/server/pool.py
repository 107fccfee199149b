"""A pool of worker processes with a bounded queue: a job that does not fit is refused at once (Busy),
never queued without limit.

The processes are a concurrent.futures.ProcessPoolExecutor (spawned, each set up once by `initializer`).
Capacity is `workers` jobs running plus `queue_size` waiting; a request's images are reserved together.
A worker that dies (killed, out of memory) breaks the executor: the jobs it held fail, and the pool
replaces the executor, so the server goes on.
"""
import asyncio
import math
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context

from facemask.use.server import worker


class Busy(Exception):
    """The queue is full; retry after `retry_after` seconds."""

    def __init__(self, waiting: int, retry_after: int):
        super().__init__(f"server busy: {waiting} images queued or running, the most it takes; "
                         f"retry after {retry_after} s")
        self.retry_after = retry_after


class WorkerPool:
    def __init__(self, workers: int, queue_size: int, initializer=None, initargs: tuple = ()):
        if workers < 1 or queue_size < 0:
            raise ValueError(f"workers must be >= 1 and queue_size >= 0, got {workers} and {queue_size}")
        self.workers, self.capacity = workers, workers + queue_size
        self.pending = 0  # jobs submitted and not finished
        self._setup = (initializer, initargs)
        self._lock = threading.Lock()
        self._seconds = deque(maxlen=100)  # recent jobs' seconds from submitted to done, for Retry-After
        self._executor = self._new_executor()

    def _new_executor(self) -> ProcessPoolExecutor:
        initializer, initargs = self._setup
        return ProcessPoolExecutor(self.workers, mp_context=get_context("spawn"), initializer=initializer,
                                   initargs=initargs)

    def start(self, timeout: float = 600) -> None:
        """Spawn every worker and wait until each has run its initializer (a model loaded, warmed up)."""
        started, deadline = set(), time.monotonic() + timeout
        while len(started) < self.workers:
            jobs = [self._executor.submit(worker.hold, 0.2) for _ in range(self.workers)]
            started |= {job.result(max(1.0, deadline - time.monotonic())) for job in jobs}

    def submit(self, calls: list[tuple]) -> list[Future]:
        """Submit (fn, *args) calls together; Busy when they do not all fit in the queue."""
        with self._lock:
            if self.pending + len(calls) > self.capacity:
                raise Busy(self.pending, self.retry_after())
            self.pending += len(calls)
            executor = self._executor
        futures = []
        for fn, *args in calls:
            try:
                future = executor.submit(fn, *args)
            except (BrokenProcessPool, RuntimeError) as err:  # broken, or shut down as a broken one was replaced
                future = Future()
                future.set_exception(BrokenProcessPool(f"a worker process died ({err})"))
            future.add_done_callback(self._finished(executor, time.monotonic()))
            futures.append(future)
        return futures

    async def run(self, calls: list[tuple]) -> list:
        """Results (or the exceptions they raised) of the calls, run across the workers."""
        futures = [asyncio.wrap_future(future) for future in self.submit(calls)]
        return await asyncio.gather(*futures, return_exceptions=True)

    def _finished(self, executor: ProcessPoolExecutor, submitted: float):
        def done(future: Future) -> None:
            with self._lock:
                self.pending -= 1
                self._seconds.append(time.monotonic() - submitted)
                if isinstance(future.exception(), BrokenProcessPool) and executor is self._executor:
                    self._executor = self._new_executor()
                    executor.shutdown(wait=False, cancel_futures=True)

        return done

    def retry_after(self) -> int:
        """Seconds a client should wait: the recent jobs' median time from submitted to done (at least 1)."""
        typical = sorted(self._seconds)[len(self._seconds) // 2] if self._seconds else 1.0
        return max(1, math.ceil(typical))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
