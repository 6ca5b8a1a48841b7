"""Passwords: which ones are refused (NIST SP 800-63B), and hashing bounded in memory and time."""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import TypeVar

from microshop.platform.errors import Unavailable

T = TypeVar("T")

COMMON_PASSWORDS = Path(__file__).with_name("common-passwords.txt.gz")
"""The 20,000 most common passwords (the list Django ships; see common-passwords.LICENSE)."""

# Words anyone guessing a microshop password tries first (NIST: "context-specific words").
_CONTEXT_WORDS = ("microshop",)

BUSY_RETRY_AFTER_SECONDS = 1


@cache
def common_passwords() -> frozenset[str]:
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip().lower() for line in lines if line.strip())


def password_problem(password: str, email: str = "") -> str | None:
    """Why a new password is refused, or None. NIST SP 800-63B §3.1.1.2: no composition rules,
    but a blocklist of common, expected or context-specific passwords."""
    if not password.strip():
        return "the password must not be only whitespace"
    folded = password.strip().lower()
    if folded in common_passwords():
        return "this password is one of the most common passwords; choose another"
    local_part = email.partition("@")[0].lower()
    if folded in {email.lower(), local_part, *_CONTEXT_WORDS} and folded:
        return "the password must not be your email, its name part or the shop's name"
    return None


class PasswordHashing:
    """Runs argon2 (19 MiB a hash) on a few worker threads, with a bounded queue in front.

    The memory of a users process is its baseline plus `workers` hashes: the same threads do
    every hash, so the allocator keeps at most that many buffers however many logins arrive.
    When `workers + queue` hashes are already waiting, a caller gets a 503 with Retry-After at
    once rather than a place in an ever longer line.
    """

    def __init__(self, workers: int, queue: int) -> None:
        self._slots = threading.BoundedSemaphore(workers + queue)
        self._workers = workers
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="argon2")
            return self._executor

    async def run(self, work: Callable[[], T]) -> T:
        """Run one hash or verification; Unavailable (503) when too many are waiting."""
        if not self._slots.acquire(blocking=False):
            raise Unavailable(
                "too many logins at once; try again shortly",
                retry_after_seconds=BUSY_RETRY_AFTER_SECONDS,
            )
        try:
            return await asyncio.wrap_future(self._pool().submit(work))
        finally:
            self._slots.release()

    def close(self) -> None:
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None
