"""Event-loop plumbing for `ChatStorage`: a private loop
thread, and running a coroutine on another thread's loop without ever hanging.

A storage's connections belong to one event loop (its home). When calls come
from loops running at the same time in several threads, the storage moves its
connections to a loop of its own, `LoopThread`, and hands every call to
it with `run_on`. A user's loop is not used for that: ``asyncio.run``
cancels every task of its loop when its main coroutine returns, which would
cancel calls other threads handed to it in the middle of a write.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .errors import ClosedError

__all__ = ["LoopThread", "loop_is_live", "run_on"]

T = TypeVar("T")

_POLL = 0.25  # seconds between checks that the other loop still runs


def loop_is_live(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether ``loop`` is running now (so a callback handed to it will run)."""
    return loop.is_running() and not loop.is_closed()


class LoopThread:
    """An event loop running forever on a daemon thread, until `stop`.

    Daemon, so a storage the program never closes does not keep the
    interpreter from exiting.
    """

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        started = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(started,), name="storage_core-loop", daemon=True
        )
        self.thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        loop = self.loop
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shut_down(self) -> None:
        """Cancel what still runs on the loop (calls made after close), then stop it."""
        me = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not me]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        asyncio.get_running_loop().stop()

    async def stop(self) -> None:
        """Stop the loop and wait (without blocking the caller's loop) for its thread."""
        if self.thread.is_alive():
            with contextlib.suppress(RuntimeError):  # already closed
                asyncio.run_coroutine_threadsafe(self._shut_down(), self.loop)
            # A thread's end cannot be awaited, only polled.
            while self.thread.is_alive():  # noqa: ASYNC110
                await asyncio.sleep(0.001)
        self.thread.join()

    def stop_soon(self) -> None:
        """Tell the loop to stop (cancelling what still runs on it), without waiting."""
        with contextlib.suppress(RuntimeError):  # already closed
            asyncio.run_coroutine_threadsafe(self._shut_down(), self.loop)

    def stop_blocking(self, timeout: float | None = None) -> None:
        """`stop` for a caller without an event loop: blocks until the thread
        ends (or ``timeout`` passes). Not from the loop's own thread."""
        if self.thread.is_alive():
            self.stop_soon()
        self.thread.join(timeout)


async def run_on(loop: asyncio.AbstractEventLoop, call: Callable[[], Awaitable[T]]) -> T:
    """``await call()`` run on ``loop`` (running in another thread).

    Raises `ClosedError` if ``loop`` stops before finishing it (the
    only loop handed calls is a storage's own, which stops when the storage
    closes); never waits for a loop that has stopped. Cancelling the caller
    cancels the call on ``loop``.
    """
    coro = _awaited(call)
    try:
        handed = asyncio.run_coroutine_threadsafe(coro, loop)
    except RuntimeError:  # the loop is closed
        coro.close()
        raise ClosedError("the storage is closed") from None
    waiter = asyncio.wrap_future(handed)
    try:
        while True:
            done, _ = await asyncio.wait({waiter}, timeout=_POLL)
            if done:
                break
            if not loop_is_live(loop):
                raise ClosedError("the storage is closed")
    except BaseException:
        handed.cancel()
        raise
    if waiter.cancelled():
        # Cancelled over there (the storage closed), not by our caller: a
        # cancellation of ours is raised by asyncio.wait above.
        raise ClosedError("the storage is closed")
    return waiter.result()


async def _awaited(call: Callable[[], Awaitable[T]]) -> T:
    return await call()
