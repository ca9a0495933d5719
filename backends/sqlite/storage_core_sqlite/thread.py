"""Running a whole unit of work on an aiosqlite connection's thread in one call.

aiosqlite sends every ``execute``, ``fetchone`` and ``commit`` to the
connection's thread and waits for the answer: a trip of 30-70 us on the
machines we measured, more than SQLite needs to run the statement. A save is
five or six such calls (begin, insert, trim, read, commit), so it cost several
times a single ``execute``. Here the whole transaction is one function that
runs on that thread against the ``sqlite3`` connection, and the event loop
waits for it once.

aiosqlite has no public call for this. ``Connection._execute(fn, *args)``
(queue ``fn`` on the connection's thread, await its result) is what every
public method of aiosqlite is built on, and ``Connection._conn`` is the
``sqlite3`` connection; both have kept their form since aiosqlite 0.17.
:func:`check_aiosqlite` fails clearly if a release changes them, and the
distribution's dependency range stops at the newest release tested.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiosqlite

from storage_core import ConfigurationError

__all__ = ["check_aiosqlite", "on_thread", "transaction"]

T = TypeVar("T")


def check_aiosqlite() -> None:
    """Raise ConfigurationError if the installed aiosqlite lacks what :func:`on_thread` uses."""
    missing = [
        name for name in ("_execute", "_conn") if not hasattr(aiosqlite.Connection, name)
    ]
    if missing:
        raise ConfigurationError(
            f"aiosqlite {getattr(aiosqlite, '__version__', '?')} has no Connection."
            f"{', '.join(missing)}; storage-core-sqlite needs aiosqlite>=0.20,<0.23"
        )


async def on_thread(
    conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any
) -> T:
    """``fn(sqlite3_connection, *args)``, run on ``conn``'s thread, in one trip.

    Calls queued on ``conn`` before this one run first, and calls queued after
    it wait until it returns, so ``fn`` has the connection to itself. If the
    awaiting task is cancelled, ``fn`` still runs to its end on the thread.
    """
    run = cast("Callable[..., Awaitable[T]]", conn._execute)
    return await run(fn, conn._conn, *args)


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
