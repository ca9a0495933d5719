"""One storage used from several event loops: one after another, and at once.

These tests are synchronous: each makes its own loops with ``asyncio.run``
(in the test's thread, or in worker threads), as a program without a
long-lived loop does, and as agent-squad's ``SupervisorAgent`` does in its
worker threads.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from storage_core import Capabilities, StoredMessage

from ._support import Conversation, FreshIds, StorageFactory, TimedStorage, msg, texts

__all__ = ["EventLoopTests"]

T = TypeVar("T")

THREADS = 4
PER_THREAD = 15
SEQUENTIAL = 4
_THREADS_GONE = 10.0  # seconds for the storage's threads to end after close()


def _role(i: int) -> str:
    return "user" if i % 2 == 0 else "assistant"


def _in_threads(work: Callable[[int], T], count: int, timeout: float) -> list[T]:
    """``work(0) .. work(count - 1)``, each on its own thread, all at once; the
    first exception raised is re-raised; a thread still running after
    ``timeout`` seconds fails the test instead of hanging it."""
    results: dict[int, T] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(n: int) -> None:
        try:
            start.wait(timeout)
            results[n] = work(n)
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    assert not stuck, f"threads still running after {timeout:g} s: {stuck}"
    if errors:
        raise errors[0]
    return [results[n] for n in range(count)]


def _fetch_and_close(storage: TimedStorage, conv: Conversation) -> list[StoredMessage]:
    """The conversation, then ``close()``, in a new event loop."""

    async def run() -> list[StoredMessage]:
        try:
            return await storage.fetch_chat(*conv)
        finally:
            await storage.close()

    return asyncio.run(run())


def _assert_no_new_threads(before: set[threading.Thread]) -> None:
    deadline = time.monotonic() + _THREADS_GONE
    while True:
        extra = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not extra or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not extra, f"threads left running after close(): {[t.name for t in extra]}"


class EventLoopTests:
    """A storage follows the loop it is called from; nothing lost or written twice."""

    def test_sequential_event_loops(
        self,
        storage_factory: StorageFactory,
        fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """``asyncio.run(s.initialize())``, then each save in a new ``asyncio.run``."""
        before = set(threading.enumerate())
        c = fresh_ids.conv()
        s = storage_factory.make(skip_consecutive_roles=False)
        asyncio.run(s.initialize())
        indexes = []
        for i in range(SEQUENTIAL):
            stored = asyncio.run(s.append_messages(*c, [msg(_role(i), f"seq:{i}")]))
            indexes += [m.index for m in stored]
        assert indexes == list(range(SEQUENTIAL))

        final = _fetch_and_close(s, c)
        if backend_capabilities.read_your_writes:
            assert texts(final) == [f"seq:{i}" for i in range(SEQUENTIAL)]
            assert [m.index for m in final] == list(range(SEQUENTIAL))
        _assert_no_new_threads(before)

    def test_threads_each_with_their_own_loop(
        self,
        storage_factory: StorageFactory,
        fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """Four threads, each running ``asyncio.run``, saving on one storage at once."""
        before = set(threading.enumerate())
        c = fresh_ids.conv()
        s = storage_factory.make(skip_consecutive_roles=False)
        asyncio.run(s.initialize())

        def writer(n: int) -> list[int]:
            async def saves() -> list[int]:
                out: list[int] = []
                for i in range(PER_THREAD):
                    stored = await s.append_messages(*c, [msg(_role(i), f"t{n}:{i}")])
                    out += [m.index for m in stored]
                return out

            return asyncio.run(saves())

        reported = _in_threads(writer, THREADS, storage_factory.timeout)
        total = THREADS * PER_THREAD
        assert sum(len(r) for r in reported) == total, "a save stored nothing"
        assert sorted(i for r in reported for i in r) == list(range(total)), (
            "the saves reported duplicate or missing indexes"
        )
        for r in reported:
            assert r == sorted(r), "one thread's saves got indexes out of order"

        final = _fetch_and_close(s, c)
        if backend_capabilities.read_your_writes:
            assert [m.index for m in final] == list(range(total)), "messages lost or doubled"
            assert sorted(texts(final)) == sorted(
                f"t{n}:{i}" for n in range(THREADS) for i in range(PER_THREAD)
            )
        _assert_no_new_threads(before)

    def test_loop_running_in_another_thread(
        self,
        storage_factory: StorageFactory,
        fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """The loop that opened the storage keeps running (and calling) in its
        thread while other loops call, as agent-squad's orchestrator does."""
        before = set(threading.enumerate())
        c = fresh_ids.conv()
        s = storage_factory.make(skip_consecutive_roles=False)
        opened, others_done = threading.Event(), threading.Event()

        async def home() -> list[int]:
            await s.initialize()
            first = await s.append_messages(*c, [msg("user", "home:0")])
            opened.set()
            await asyncio.to_thread(others_done.wait, storage_factory.timeout)
            last = await s.append_messages(*c, [msg("assistant", "home:1")])
            return [m.index for m in first + last]

        def run(n: int) -> list[int]:
            if n == 0:
                return asyncio.run(home())
            assert opened.wait(storage_factory.timeout), "the home loop never opened"
            try:
                stored = asyncio.run(s.append_messages(*c, [msg(_role(n), f"other:{n}")]))
            finally:
                if n == 1:
                    others_done.set()
            return [m.index for m in stored]

        reported = _in_threads(run, 2, storage_factory.timeout)
        assert sorted(i for r in reported for i in r) == [0, 1, 2]
        assert reported[0] == [0, 2], "the home loop's own saves got the wrong indexes"

        final = _fetch_and_close(s, c)
        if backend_capabilities.read_your_writes:
            assert texts(final) == ["home:0", "other:1", "home:1"]
        _assert_no_new_threads(before)
