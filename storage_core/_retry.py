"""Bounded retries with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from .errors import ConfigurationError, TransientError

__all__ = ["RetryPolicy"]

log = logging.getLogger("storage_core.retry")
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How the core repeats a call that failed with a
    [`TransientError`][storage_core.errors.TransientError].

    At most ``attempts`` tries in all, waiting a random time up to
    ``initial_delay * 2**n`` (capped at ``max_delay``) between them, and never
    starting a try after ``deadline`` seconds. Every write carries a request
    id on a backend with exactly-once writes, so it is repeated like a read;
    on a backend without them, a write whose failure was *ambiguous* (the
    connection died after the request was sent) is not repeated, since it may
    have been committed: it raises at once with ``TransientError.ambiguous``
    set. ``RetryPolicy(attempts=1)`` turns retries off.
    """

    attempts: int = 5
    initial_delay: float = 0.05
    max_delay: float = 2.0
    deadline: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.attempts, bool) or not isinstance(self.attempts, int) or (
            self.attempts < 1
        ):
            raise ConfigurationError(f"retry attempts must be an int >= 1, got {self.attempts!r}")
        for name in ("initial_delay", "max_delay", "deadline"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or value < 0:
                raise ConfigurationError(f"retry {name} must be a number >= 0, got {value!r}")

    def delay(self, attempt: int) -> float:
        """The wait before try ``attempt + 1`` (``attempt`` counts from 1)."""
        return random.uniform(0, min(self.max_delay, self.initial_delay * 2 ** (attempt - 1)))

    async def run(
        self, call: Callable[[], Awaitable[T]], *, what: str, idempotent: bool = True
    ) -> T:
        """Run ``call``, repeating it on transient failures as the policy allows;
        a call that is not ``idempotent`` is not repeated after an ambiguous one."""
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return await call()
            except TransientError as exc:
                if exc.ambiguous and not idempotent:
                    raise
                pause = self.delay(attempt)
                elapsed = time.monotonic() - started
                if attempt >= self.attempts or elapsed + pause > self.deadline:
                    raise
                log.debug("%s failed (%s); retry %d/%d in %.3fs",
                          what, exc, attempt, self.attempts - 1, pause)
                await asyncio.sleep(pause)
                attempt += 1
