"""A small pool of asyncpg connections, made for calls of one statement each.

asyncpg's own ``Pool`` wraps each borrowed connection in a holder and a
proxy and awaits in both ``acquire()`` and ``release()``, even when a
connection is idle: on a local server that costs about as much as the round
trip itself. Here borrowing an idle connection is a list pop and returning
it an append, neither of which awaits.

- Idle connections are kept last in, first out: the one used most recently
  (its prepared statements cached) is borrowed next.
- Nothing is reset on return: the backend never changes session state (no
  ``SET``, ``LISTEN``, cursors or session-level locks). A connection goes
  back to the idle list only after a call that ended normally or with an
  error the server reported (which rolled its implicit transaction back),
  and only if it is open and outside a transaction.
- Anything else (a cancelled call, a lost connection, a timeout, any other
  failure) *retires* the connection: it is closed in the background, which
  first lets asyncpg finish cancelling a statement still running, so no later
  call meets its leftovers. Its place in ``max_size`` is free once it is gone.
- A connection found closed when borrowed (the server restarted, an idle
  timeout) is dropped and the next one tried.
- Above ``min_size``, a connection left idle for ``idle_lifetime`` seconds
  (five minutes, as asyncpg's pool) is closed when a later call returns its
  own, so a burst's extra connections do not stay open for good.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from storage_core import ClosedError

__all__ = ["Pool"]

Connection = Any
"""An ``asyncpg.Connection`` (asyncpg ships no type information)."""


def _abandon(conn: Connection) -> None:
    """Close ``conn`` without its event loop, which has stopped or closed.

    On a closed loop ``terminate()`` fails once it asks the loop to finish
    the close: the socket is then closed here (the transport's ``_sock``,
    which asyncio closes the same way), so the server sees the client go.
    """
    try:
        conn.terminate()
    except RuntimeError:  # the loop is closed
        transport = getattr(conn, "_transport", None)
        sock = getattr(transport, "_sock", None)
        if sock is not None:
            sock.close()


def _terminate_result(task: asyncio.Future[Connection]) -> None:
    """Done callback of an abandoned connection attempt: close what it opened."""
    if not task.cancelled() and task.exception() is None:
        task.result().terminate()


class Pool:
    """At most ``max_size`` connections from ``connect``; ``min_size`` opened by `open`.

    Borrow with `take` (an idle connection or ``None``, without
    awaiting) or `acquire` (waits for one, opening a connection when
    below ``max_size``); give back with `release`.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        *,
        min_size: int,
        max_size: int,
        close_timeout: float,
        idle_lifetime: float = 300.0,
    ) -> None:
        self._connect = connect
        self._min_size = min_size
        self._max_size = max_size
        self._close_timeout = close_timeout
        self._idle_lifetime = idle_lifetime
        self._idle: list[tuple[Connection, float]] = []  # with the time it was released
        self._all: set[Connection] = set()  # open: idle, borrowed or being retired
        self._opening = 0
        self._waiters: deque[asyncio.Future[Connection | None]] = deque()
        self._retiring: set[asyncio.Task[None]] = set()
        self._changed: asyncio.Event | None = None  # set up by close()
        self._closed = False

    def __repr__(self) -> str:
        return (f"<Pool size={self.size}/{self._max_size} idle={len(self._idle)} "
                f"waiting={len(self._waiters)}{' closed' if self._closed else ''}>")

    @property
    def size(self) -> int:
        """Connections open or being opened, borrowed or not."""
        return len(self._all) + self._opening

    async def open(self) -> None:
        """Open ``min_size`` connections at once; if one fails, close the rest and raise."""
        tasks = [asyncio.ensure_future(self._connect()) for _ in range(self._min_size)]
        self._opening += len(tasks)
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()  # nothing for those already done
                task.add_done_callback(_terminate_result)
            raise
        finally:
            self._opening -= len(tasks)
        conns = [task.result() for task in tasks]
        if self._closed:
            for conn in conns:
                conn.terminate()
            raise ClosedError("the connection pool is closed")
        self._all.update(conns)
        now = time.monotonic()
        self._idle.extend((conn, now) for conn in conns)

    # -- borrowing ---------------------------------------------------------

    def take(self) -> Connection | None:
        """An idle, open connection, or ``None`` if there is none (never waits)."""
        idle = self._idle
        while idle:
            conn = idle.pop()[0]
            if not conn.is_closed():
                return conn
            self._forget(conn)  # lost while idle
        return None

    async def acquire(self) -> Connection:
        """A connection: an idle one, a new one below ``max_size``, or the next released.

        Raises `ClosedError` once the pool is closed, and
        whatever ``connect`` raises.
        """
        while True:
            if self._closed:
                raise ClosedError("the connection pool is closed")
            conn = self.take()
            if conn is not None:
                return conn
            if self.size < self._max_size:
                return await self._open_one()
            waiter: asyncio.Future[Connection | None] = (
                asyncio.get_running_loop().create_future())
            self._waiters.append(waiter)
            try:
                conn = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Handed a connection (or a free place) just as we were cancelled.
                    handed = waiter.result()
                    if handed is not None:
                        self.release(handed)
                    else:
                        self._wake_one()
                raise
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if conn is not None:
                return conn
            # A place became free: open a connection (unless another call was faster).

    async def _open_one(self) -> Connection:
        self._opening += 1
        try:
            conn = await self._connect()
        except BaseException:
            self._opening -= 1
            self._wake_one()
            self._notify()
            raise
        self._opening -= 1
        if self._closed:
            conn.terminate()
            self._notify()
            raise ClosedError("the connection pool is closed")
        self._all.add(conn)
        return conn

    def release(self, conn: Connection, *, reuse: bool = True) -> None:
        """Give ``conn`` back: to a waiting call, to the idle list, or (``reuse``
        false, or it is closed or in a transaction, or the pool closed) retired."""
        if reuse and not self._closed and not conn.is_closed() and not conn.is_in_transaction():
            waiters = self._waiters
            while waiters:
                waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(conn)
                    return
            idle = self._idle
            now = time.monotonic()
            idle.append((conn, now))
            if now - idle[0][1] > self._idle_lifetime and len(self._all) > self._min_size:
                self._retire(idle.pop(0)[0])  # the one unused for longest
            return
        self._retire(conn)

    # -- retiring ----------------------------------------------------------

    def _retire(self, conn: Connection) -> None:
        if conn.is_closed():
            self._forget(conn)
            return
        task = asyncio.ensure_future(self._close_one(conn))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close_one(self, conn: Connection) -> None:
        try:
            # Waits for a cancellation in flight to be answered, then says goodbye.
            await conn.close(timeout=self._close_timeout)
        except (Exception, asyncio.CancelledError):
            conn.terminate()
        finally:
            self._forget(conn)

    def _forget(self, conn: Connection) -> None:
        """``conn`` is gone: its place is free for a waiting call."""
        if conn in self._all:
            self._all.discard(conn)
            self._wake_one()
            self._notify()

    def _wake_one(self) -> None:
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()

    # -- closing -----------------------------------------------------------

    def _shut(self) -> None:
        self._closed = True
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_exception(ClosedError("the connection pool is closed"))

    async def close(self) -> None:
        """Refuse new calls, wait for the borrowed connections to come back,
        close every connection gracefully. Calls waiting for a connection get
        `ClosedError`."""
        self._shut()
        idle, self._idle = self._idle, []
        for conn, _ in idle:
            self._retire(conn)
        while self._all or self._opening:
            self._changed = asyncio.Event()
            await self._changed.wait()

    def abandon(self) -> None:
        """Close the pool and every connection without touching the event loop
        they belong to, which has stopped or closed; awaits nothing. Calls
        still waiting on that loop are never woken (nothing runs there)."""
        self._closed = True
        self._waiters.clear()
        self._idle.clear()
        self._retiring.clear()
        conns, self._all = self._all, set()
        for conn in conns:
            _abandon(conn)

    def terminate(self) -> None:
        """Close every connection at once, borrowed or not, without waiting."""
        self._shut()
        self._idle.clear()
        conns, self._all = self._all, set()
        for conn in conns:
            conn.terminate()
        self._notify()
