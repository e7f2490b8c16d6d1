"""Group commit: write jobs that queue while a commit is in flight share the next one.

On SQLite every write of the data dir is serialized (one ``flock`` across processes, see
``connection.locked_begin``) and a durable commit costs an fsync of the WAL; a blob placement
also costs an fsync of its directory. With one transaction per job those fsyncs run one after
the other under the lock, and a busy registry spends its time waiting on them. Here one thread
per process takes every job queued so far, runs each in a SAVEPOINT of one transaction (a job
that fails rolls back alone and gets its own error), runs the batch's before-commit hooks once
(the directory fsyncs, deduplicated) and commits once, without waiting for the disk; then it
releases the lock and a second thread fdatasyncs the WAL, once for every batch committed
meanwhile, while the lock serves the next writer. A job's future resolves only after its
commit is on disk: nobody is told "stored" before it is durable.

On PostgreSQL (no cross-process lock, row-level locking, network round trips) each job runs in
its own transaction on a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar

import sqlalchemy as sa

from strata.meta.connection import locked_begin, sync_wal

T = TypeVar("T")
Hook = Callable[[list[Any]], None]


class Batch:
    """What the jobs of one commit share: hooks run once each, just before COMMIT."""

    def __init__(self) -> None:
        self._hooks: dict[Hook, list[Any]] = {}

    def before_commit(self, hook: Hook, item: Hashable) -> None:
        """Call ``hook(items)`` once before this batch commits, with every item given here."""
        self._hooks.setdefault(hook, []).append(item)

    def merge(self, other: Batch) -> None:
        for hook, items in other._hooks.items():
            self._hooks.setdefault(hook, []).extend(items)

    def run_hooks(self) -> None:
        for hook, items in self._hooks.items():
            hook(items)


Job = Callable[[sa.Connection, Batch], T]
_Outcome = tuple["_Pending[Any]", bool, Any]  # (job, succeeded, result or exception)


class _Pending(Generic[T]):
    __slots__ = ("durable", "future", "job")

    def __init__(self, job: Job[T], durable: bool) -> None:
        self.job = job
        self.durable = durable
        self.future: concurrent.futures.Future[T] = concurrent.futures.Future()


class GroupWriter:
    def __init__(self, engine: sa.Engine, *, max_batch: int = 64) -> None:
        self.engine = engine
        self._max_batch = max_batch
        self._grouped = engine.dialect.name == "sqlite"
        self._queue: queue.SimpleQueue[_Pending[Any] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        # batches committed, waiting for the WAL's fsync (SQLite)
        self._unsynced: queue.SimpleQueue[list[_Outcome] | None] = queue.SimpleQueue()
        self._syncer: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self.commits = 0  # transactions committed (for tests and metrics)
        self.jobs = 0

    async def run(self, job: Job[T], *, durable: bool = True,
                  prepare: Callable[[], None] | None = None) -> T:
        """Run ``job(conn, batch)`` in a write transaction; its result once committed.

        ``durable=False``: the job's commit need not reach the disk before it returns (see
        ``connection.locked_begin``); a batch is durable if any of its jobs is.

        ``prepare``: blocking work that must be done before the job (a blob's fdatasync), run
        on a thread that then queues the job itself: the event loop is woken once, by the
        commit, instead of once more in between. If it raises, the job does not run."""
        pending: _Pending[T] = _Pending(job, durable)
        if not self._grouped:
            await asyncio.to_thread(self._prepare_then_commit, prepare, pending)
        else:
            self._ensure_thread()
            if prepare is None:
                self._queue.put(pending)
            else:
                asyncio.get_running_loop().run_in_executor(
                    None, self._prepare_then_queue, prepare, pending)
        return await asyncio.wrap_future(pending.future)

    def _prepare_then_queue(self, prepare: Callable[[], None], pending: _Pending[Any]) -> None:
        if self._prepared(prepare, pending):
            self._queue.put(pending)

    def _prepare_then_commit(self, prepare: Callable[[], None] | None,
                             pending: _Pending[Any]) -> None:
        if prepare is None or self._prepared(prepare, pending):
            self._commit([pending])

    @staticmethod
    def _prepared(prepare: Callable[[], None], pending: _Pending[Any]) -> bool:
        try:
            prepare()
        except BaseException as exc:
            with contextlib.suppress(concurrent.futures.InvalidStateError):  # cancelled
                pending.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return False
        return True

    def run_sync(self, job: Job[T], *, durable: bool = True) -> T:
        """The same from a plain thread (commands, tests): a transaction of its own."""
        pending: _Pending[T] = _Pending(job, durable)
        self._commit([pending])
        return pending.future.result()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=10)
            self._thread = None
        if self._syncer is not None:  # after the writer: it may hand over a last batch
            self._unsynced.put(None)
            self._syncer.join(timeout=10)
            self._syncer = None

    # -- the writer thread -------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="sqlite-writer",
                                                daemon=True)
                self._thread.start()
            if self._syncer is None or not self._syncer.is_alive():
                self._syncer = threading.Thread(target=self._sync_loop, name="sqlite-sync",
                                                daemon=True)
                self._syncer.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self._commit(batch, hand_over=True)
                    return
                batch.append(item)
            self._commit(batch, hand_over=True)

    def _sync_loop(self) -> None:
        """fdatasync the WAL for every batch committed since the last sync, then tell their
        jobs (the first batch waits for nothing: the thread syncs as soon as one is there)."""
        while True:
            first = self._unsynced.get()
            if first is None:
                return
            batches, stop = [first], False
            while True:
                try:
                    item = self._unsynced.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batches.append(item)
            try:
                sync_wal(self.engine)
            except BaseException as exc:
                # committed, but not known to be on disk: nobody is told it is stored (a job
                # that failed on its own keeps its own error)
                for outcomes in batches:
                    _resolve([(p, False, value if not ok else exc) for p, ok, value in outcomes])
                if not isinstance(exc, Exception):
                    raise
            else:
                for outcomes in batches:
                    _resolve(outcomes)
            if stop:
                return

    def _commit(self, pending: list[_Pending[Any]], *, hand_over: bool = False) -> None:
        """One transaction for ``pending``; with ``hand_over`` (the writer thread) a durable
        batch's WAL sync is left to the sync thread, else it is done here."""
        live = [p for p in pending if p.future.set_running_or_notify_cancel()]
        if not live:
            return
        outcomes: list[_Outcome] = []
        durable = any(p.durable for p in live)
        try:
            with locked_begin(self.engine, durable=durable, sync=not hand_over) as conn:
                batch = Batch()
                single = len(live) == 1
                raw: Any = conn.connection.driver_connection
                for p in live:
                    if single:  # no savepoint needed: the job's error rolls back everything
                        outcomes.append((p, True, p.job(conn, batch)))
                        continue
                    mine = Batch()
                    # Savepoints straight on the driver (SQLite): SQLAlchemy's begin_nested
                    # costs ~150 us a job, spent while every writer waits for the lock.
                    raw.execute("SAVEPOINT job")
                    try:
                        value = p.job(conn, mine)
                    except Exception as exc:
                        raw.execute("ROLLBACK TO SAVEPOINT job")
                        raw.execute("RELEASE SAVEPOINT job")
                        outcomes.append((p, False, exc))
                        continue
                    raw.execute("RELEASE SAVEPOINT job")
                    batch.merge(mine)
                    outcomes.append((p, True, value))
                batch.run_hooks()
        except BaseException as exc:
            # Nothing of this transaction was committed: every job gets the failure (a job
            # that failed on its own keeps its own error).
            done = {id(p) for p, ok, _ in outcomes if not ok}
            for p, ok, value in outcomes:
                if not ok:
                    p.future.set_exception(value)
            for p in live:
                if id(p) not in done:
                    p.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
            return
        self.commits += 1
        self.jobs += len(live)
        if hand_over and durable:
            self._unsynced.put(outcomes)  # told once the WAL is on disk
        else:
            _resolve(outcomes)


def _resolve(outcomes: list[_Outcome]) -> None:
    for p, ok, value in outcomes:
        if ok:
            p.future.set_result(value)
        else:
            p.future.set_exception(value)
