"""ChatStorage's event-loop handling, with a backend whose state belongs to one loop.

The conformance suite runs the same patterns on every real backend; these
tests check what the core promises a backend: it is only ever called on the
loop it was initialized on, ``detach()`` comes (synchronously) before it is
initialized on another, and the storage's own loop thread ends at close.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from storage_core import ChatStorage, ClosedError
from storage_core._loops import LoopThread, run_on
from storage_core._memory import MemoryBackend
from storage_core.backend import AppendRequest, AppendResult, ConversationKey, StoredRow

MESSAGE = {"role": "user", "content": "hi"}


class LoopBoundBackend(MemoryBackend):
    """The memory backend, refusing calls from any loop but the one it was
    initialized on (as a driver's connections would fail)."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.events: list[str] = []
        self.loops: set[asyncio.AbstractEventLoop] = set()

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        if loop is not self.loop:
            raise RuntimeError("called on a loop that is not the backend's")
        self.loops.add(loop)

    async def initialize(self) -> None:
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.events.append("initialize")

    def detach(self) -> None:
        self.events.append("detach")
        self.loop = None

    async def append(self, request: AppendRequest) -> AppendResult:
        self._check()
        await asyncio.sleep(0)  # a round trip: other calls interleave here
        return await super().append(request)

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        self._check()
        return await super().fetch(key, limit)

    async def close(self) -> None:
        if self.loop is not None:
            self._check()
        self.events.append("close")


def test_each_new_loop_takes_over_after_the_old_one_stopped() -> None:
    backend = LoopBoundBackend()
    storage = ChatStorage(backend, skip_consecutive_roles=False)
    asyncio.run(storage.initialize())
    for _ in range(3):
        asyncio.run(storage.append_messages("u", "s", "a", [MESSAGE]))
    assert len(asyncio.run(storage.fetch_chat("u", "s", "a"))) == 3
    asyncio.run(storage.close())
    assert backend.events == ["initialize"] + ["detach", "initialize"] * 4 + ["detach", "close"]
    with pytest.raises(ClosedError):
        asyncio.run(storage.fetch_chat("u", "s", "a"))


def test_loops_running_at_once_share_the_storages_own_loop() -> None:
    backend = LoopBoundBackend()
    storage = ChatStorage(backend, skip_consecutive_roles=False)
    before = set(threading.enumerate())
    errors: list[BaseException] = []
    all_running = threading.Barrier(4)

    def writer() -> None:
        async def saves() -> None:
            await storage.append_messages("u", "s", "a", [MESSAGE])
            # Every thread's loop is running (and idle) here: the calls after it overlap.
            await asyncio.to_thread(all_running.wait, 30)
            for _ in range(19):
                await storage.append_messages("u", "s", "a", [MESSAGE])

        try:
            asyncio.run(saves())
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    stored = asyncio.run(storage.fetch_chat("u", "s", "a"))
    assert [m.index for m in stored] == list(range(80))
    # Every backend call after the move ran on one loop: the storage's own.
    own = storage._own_loop
    assert own is not None
    assert backend.loop is own.loop
    asyncio.run(storage.close())
    assert backend.events[-1] == "close"
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, "the storage's loop thread is still running"


def test_a_call_handed_to_a_stopped_loop_fails_instead_of_hanging() -> None:
    own = LoopThread()
    asyncio.run(own.stop())

    async def call() -> None:
        await asyncio.wait_for(run_on(own.loop, lambda: asyncio.sleep(0)), 5)

    started = time.monotonic()
    with pytest.raises(ClosedError):
        asyncio.run(call())
    assert time.monotonic() - started < 5


def test_close_from_another_loop_while_the_home_loop_runs() -> None:
    """close() on a thread's loop while the loop that owns the connections is
    still running elsewhere: the connections are closed, nothing is refused."""
    backend = LoopBoundBackend()
    storage = ChatStorage(backend, skip_consecutive_roles=False)
    home = LoopThread()  # stands in for a user's loop that keeps running
    before = set(threading.enumerate())

    async def on_home() -> None:
        await storage.append_messages("u", "s", "a", [MESSAGE])

    asyncio.run_coroutine_threadsafe(on_home(), home.loop).result(10)
    asyncio.run(asyncio.wait_for(storage.close(), 10))
    # Dropped from the running loop, then closed on the storage's own loop.
    assert backend.events == ["initialize", "detach", "close"]
    with pytest.raises(ClosedError):
        asyncio.run(storage.fetch_chat("u", "s", "a"))
    asyncio.run(home.stop())
    deadline = time.monotonic() + 5
    while set(threading.enumerate()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(threading.enumerate()) - before, "a loop thread is still running"
