"""Group commit for a SQLite file: one writer thread commits the work of every caller waiting.

SQLite has one writer per file, so this process's writers take turns, and in a busy process
each turn costs more than its SQL: a BEGIN, a COMMIT with its fsync and, before each
statement, a wait to retake the GIL that the statement released. A lock held by the writing
thread across those waits made every other writer wait for them too. In the standalone saga
at 64 orders in flight the orders file's lock was busy 87-90 % of the time, held 4-5 ms for
two or three statements, ~0.85 ms of them before each statement (even BEGIN IMMEDIATE, which
touches no disk) waiting for the GIL (docs/benchmarks.md, "Standalone").

Here callers hand their transaction body to one thread, which runs every body queued at the
time, in the order they came, in one transaction and commits once; each caller returns what
its body returned once that commit is done, as durable as its own commit would have been. A
body that raises, or a commit that fails, rolls the group back; each of its bodies is then run
again alone, in a transaction of its own, so that only the failing one fails. A body must
therefore touch nothing but the transaction it is given until it returns, and may run twice.
It runs in its caller's context (contextvars), so its spans are its caller's children.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

log = logging.getLogger(__name__)

T = TypeVar("T")
H = TypeVar("H")

# The most bodies one transaction takes (a failure among them re-runs each alone).
GROUP_LIMIT = 64


@dataclass(eq=False)
class _Work:
    body: Callable[[Any], Any]
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error = result, error
        self.done.set()


_STOP = object()


class GroupCommit(Generic[H]):
    """Runs write transactions on one thread, several callers' bodies to a commit.

    `transaction()` is entered by the writer thread for each group: it begins a transaction
    and yields what the bodies are given (a connection, a session), commits on leaving and
    rolls back if the block raises.
    """

    def __init__(
        self,
        name: str,
        transaction: Callable[[], contextlib.AbstractContextManager[H]],
        limit: int = GROUP_LIMIT,
    ) -> None:
        self.name, self.transaction, self.limit = name, transaction, limit
        self._queue: queue.SimpleQueue[_Work | object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._lock = threading.Lock()
        self._writing = threading.local()  # on the writer thread: `active`, `handle`

    def run(self, body: Callable[[H], T]) -> T:
        """`body` run in a write transaction: what it returns (or raises), once committed."""
        if getattr(self._writing, "active", False):
            # A body's own call (a store method calling another): inside its transaction.
            return body(self._writing.handle)
        work = _Work(body)
        with self._lock:
            if self._writer is None or not self._writer.is_alive():
                self._writer = threading.Thread(
                    target=self._write_forever, name=f"group-commit-{self.name}", daemon=True
                )
                self._writer.start()
            self._queue.put(work)
        work.done.wait()
        if work.error is not None:
            raise work.error
        return cast(T, work.result)

    def close(self) -> None:
        """Stop the writer once every body queued before this call has run."""
        with self._lock:
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(_STOP)
        if writer is not None and writer is not threading.current_thread():
            writer.join()

    def _write_forever(self) -> None:
        group: list[_Work] = []
        try:
            while True:
                item = self._queue.get()
                stop = item is _STOP
                if not stop:
                    group.append(cast(_Work, item))
                while not stop and len(group) < self.limit:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                    else:
                        group.append(cast(_Work, item))
                if group:
                    self._commit(group)
                    group = []
                if stop:
                    return
        except BaseException as exc:  # the thread is going: nobody may wait for it in vain
            log.exception("the writer of %s stopped", self.name)
            for work in group:
                if not work.done.is_set():
                    work.finish(error=exc)
            raise

    def _commit(self, group: list[_Work]) -> None:
        try:
            with self.transaction() as handle:
                self._writing.active, self._writing.handle = True, handle
                try:
                    results = [work.context.run(work.body, handle) for work in group]
                finally:
                    self._writing.active, self._writing.handle = False, None
        except Exception as exc:
            if len(group) == 1:
                group[0].finish(error=exc)
            else:
                for work in group:  # each alone: the failing one fails, the others commit
                    self._commit([work])
            return
        for work, result in zip(group, results, strict=True):
            work.finish(result)
