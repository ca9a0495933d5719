"""Running a whole unit of work on an aiosqlite connection's thread in one call.

aiosqlite sends every ``execute``, ``fetchone`` and ``commit`` to the
connection's thread and waits for the answer, a trip that costs more than
SQLite needs to run the statement (docs/performance.md). A save is five or
six such calls (begin, insert, trim, read, commit). Here the whole
transaction is one function that
runs on that thread against the ``sqlite3`` connection, and the event loop
waits for it once.

aiosqlite has no public call for this. `on_thread` puts ``(reply, fn)`` on
the connection's queue (``Connection._tx``) as every public method of
aiosqlite does, against the ``sqlite3`` connection (``Connection._conn``).
Its reply never fails the thread: aiosqlite's thread dies with a traceback
(and every later call on it hangs) when it answers a future whose event loop
has closed, which happens when a program's ``asyncio.run`` ends during a
call, and when a storage is used from a later loop. `check_aiosqlite` fails
clearly if a release changes these internals, and the distribution's
dependency range stops at the newest release tested.

`connect` opens a connection whose thread ends cleanly: it is waited for
when opening fails (so nothing posts to a loop that may close right after),
and it is stopped at interpreter exit if the program never closed it, with a
``ResourceWarning`` as aiosqlite gives, instead of keeping the interpreter
from exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import sqlite3
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any, TypeVar, cast

import aiosqlite

from storage_core import ConfigurationError

__all__ = ["check_aiosqlite", "connect", "fetch_all", "on_thread", "transaction"]

T = TypeVar("T")

_INSTANCE_ATTRIBUTES = ("_tx", "_running", "_connection")
_EXIT_TIMEOUT = 10.0  # seconds to wait at exit for an unclosed connection's thread
_open: weakref.WeakSet[aiosqlite.Connection] = weakref.WeakSet()
_exit_hook = threading.Lock()
_exit_hook_set = False


def check_aiosqlite(conn: aiosqlite.Connection | None = None) -> None:
    """Raise ConfigurationError if the installed aiosqlite lacks what `on_thread`
    and `connect` use (on ``conn``, also the attributes of an instance)."""
    missing = [name for name in ("_conn",) if not hasattr(aiosqlite.Connection, name)]
    if conn is not None:
        missing += [name for name in _INSTANCE_ATTRIBUTES if not hasattr(conn, name)]
        if _worker(conn) is None:
            missing.append("_thread")
    if missing:
        raise ConfigurationError(
            f"aiosqlite {getattr(aiosqlite, '__version__', '?')} has no Connection."
            f"{', '.join(missing)}; storage-core-sqlite needs aiosqlite>=0.20,<0.23"
        )


class _Reply:
    """Stands in for the asyncio future aiosqlite's thread answers.

    The thread calls ``reply.get_loop().call_soon_threadsafe(set_result,
    reply, value)``; this passes the real future on, and does nothing when
    that future's loop has closed (nobody waits for the answer any more)
    instead of raising on the thread.
    """

    __slots__ = ("_future",)

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self._future = future

    def get_loop(self) -> _Reply:
        return self

    def call_soon_threadsafe(
        self, callback: Callable[[asyncio.Future[Any], Any], None], _reply: object, value: Any
    ) -> None:
        with contextlib.suppress(RuntimeError):  # the future's loop is closed
            self._future.get_loop().call_soon_threadsafe(callback, self._future, value)


async def on_thread(
    conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(sqlite3_connection, *args)``, run on ``conn``'s thread, in one trip.

    Calls queued on ``conn`` before this one run first, and calls queued after
    it wait until it returns, so ``fn`` has the connection to itself. If the
    awaiting task is cancelled, or its loop closed, ``fn`` still runs to its
    end on the thread.
    """
    if not conn._running:
        raise ValueError("Connection closed")
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    reply = cast("asyncio.Future[Any]", _Reply(future))  # all the thread uses of one
    conn._tx.put_nowait((reply, functools.partial(fn, conn._conn, *args)))
    return await future


def fetch_all(db: sqlite3.Connection, statement: str, params: Any) -> list[Any]:
    """Every row of ``statement`` (for `on_thread`)."""
    return db.execute(statement, params).fetchall()


async def connect(path: str, **options: Any) -> aiosqlite.Connection:
    """``aiosqlite.connect(path, **options)``, with a thread that ends cleanly
    (see the module's docstring)."""
    conn = aiosqlite.connect(path, **options)
    check_aiosqlite(conn)
    worker = _worker(conn)
    assert worker is not None  # checked above
    worker.daemon = True  # only if the exit hook below times out
    _set_exit_hook()
    try:
        await conn
    except BaseException:
        # aiosqlite has told the thread to stop and to answer on this loop:
        # wait for it, so the answer never reaches a loop closed meanwhile.
        while worker.is_alive():  # noqa: ASYNC110 - a thread can only be polled
            await asyncio.sleep(0.001)
        raise
    _open.add(conn)
    return conn


def _worker(conn: aiosqlite.Connection) -> threading.Thread | None:
    """The thread running ``conn``'s calls (before aiosqlite 0.22 the
    connection was that thread itself)."""
    thread = getattr(conn, "_thread", conn)
    return thread if isinstance(thread, threading.Thread) else None


def _set_exit_hook() -> None:
    global _exit_hook_set
    with _exit_hook:
        if _exit_hook_set:
            return
        # Runs when the main thread ends, before the interpreter waits for
        # other threads (what concurrent.futures uses for its workers).
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            register(_stop_unclosed)
        _exit_hook_set = True


def _stop_unclosed() -> None:
    """At exit: close the connections the program never closed, on their threads."""
    for conn in list(_open):
        worker = _worker(conn)
        if worker is None or not worker.is_alive():
            continue
        if conn._connection is None:  # closed: its thread is just ending
            worker.join(_EXIT_TIMEOUT)
            continue
        warnings.warn(
            "an SQLite connection of storage-core-sqlite was never closed; closing it "
            "at exit (close the storage: `await storage.close()` or `async with`)",
            ResourceWarning,
            stacklevel=1,
        )
        with contextlib.suppress(Exception):
            conn.stop()
        worker.join(_EXIT_TIMEOUT)


def transaction(db: sqlite3.Connection, work: Callable[[sqlite3.Connection], T]) -> T:
    """``work(db)`` inside ``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back if it
    raises. ``BEGIN IMMEDIATE`` takes the write lock before anything is read,
    waiting up to the busy timeout for other processes' writers."""
    db.execute("BEGIN IMMEDIATE")
    try:
        result = work(db)
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    return result
