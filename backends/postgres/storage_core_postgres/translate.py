"""asyncpg and socket errors -> storage_core errors (the original kept as ``__cause__``).

asyncpg's messages carry the server's text, which never includes the
password; the core also scrubs the URL's secrets from every message.
"""

from __future__ import annotations

import asyncio

import asyncpg

from storage_core import (
    AuthenticationError,
    ConfigurationError,
    StorageError,
    TransientError,
    ValidationError,
)

from .sql import NEWER_SCHEMA, OTHER_LAYOUT, REUSED_REQUEST

__all__ = ["connection_broken", "translate"]

_AUTH = frozenset({"28000", "28P01"})
# Worth another try: connection loss, server starting or stopping, too many
# connections or out of resources, lock conflicts, cancelled by a timeout,
# a read-only server (a replica during failover).
_TRANSIENT_CLASSES = ("08", "53", "40")
_TRANSIENT = frozenset({"57P01", "57P02", "57P03", "55P03", "57014", "25006", "58000"})
# The connection (or the server) went away: a write sent before may have committed.
_LOST_CLASSES = ("08",)
_LOST = frozenset({"57P01", "57P02"})


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def translate(
    exc: BaseException, what: str, *, sent: bool, write: bool, index_race: bool = False
) -> StorageError:
    """The storage_core error for ``exc``, raised by ``what``.

    ``sent``: the statement may have reached the server (the connection was
    acquired); ``write``: it changes data. A lost connection is then
    *ambiguous*: the write may have been committed (the core repeats it only
    with its request id). ``index_race``: a unique violation means another
    writer took the next ``message_index`` (a save), worth another try.
    """
    detail = _describe(exc)
    if isinstance(exc, asyncpg.PostgresError):
        code = str(getattr(exc, "sqlstate", "") or "")
        if code in _AUTH or (code == "08P01" and "authentication failed" in str(exc)):
            # PgBouncer reports a bad password as a protocol violation (08P01).
            return AuthenticationError(f"{what}: the server rejected the credentials ({detail})")
        if code == "3D000":
            return ConfigurationError(f"{what}: the database does not exist ({detail})")
        if code == "3F000":
            return ConfigurationError(f"{what}: the schema does not exist ({detail})")
        if code in (NEWER_SCHEMA, OTHER_LAYOUT):
            return ConfigurationError(f"{what}: {exc}")
        if code == REUSED_REQUEST:
            return ValidationError(str(exc).removeprefix("storage_core: "))
        if code == "23505" and index_race:
            # Our saves queue on a per-conversation lock, so the next index is
            # free unless something else wrote it (a writer that does not take
            # the lock, or a snapshot older than the lock at REPEATABLE READ):
            # retrying reads the new state.
            return TransientError(f"{what}: the next message_index was taken ({detail})")
        if code.startswith(_TRANSIENT_CLASSES) or code in _TRANSIENT:
            lost = code.startswith(_LOST_CLASSES) or code in _LOST
            return TransientError(
                f"{what}: the server is unavailable or busy ({detail})",
                ambiguous=lost and sent and write,
            )
        return StorageError(f"{what} failed: {detail}")
    if isinstance(exc, (OSError, asyncio.TimeoutError, TimeoutError)):
        # Refused, reset, unreachable, or no answer in time (asyncpg cancels
        # the statement on a command timeout, but it may have committed).
        return TransientError(
            f"{what}: cannot reach the server ({detail})", ambiguous=sent and write
        )
    if isinstance(exc, asyncpg.InternalClientError):
        # A pooled connection still busy with an earlier failure (seen around
        # server restarts, asyncpg issue 1069). "cannot switch to state" is
        # raised before anything is sent, so that one is never ambiguous.
        before_send = str(exc).startswith("cannot switch to state")
        return TransientError(
            f"{what}: the connection is unusable ({detail})",
            ambiguous=sent and write and not before_send,
        )
    if isinstance(exc, asyncpg.InterfaceError) and "closed" in str(exc):
        return TransientError(f"{what}: the connection was closed ({detail})")
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return ConfigurationError(f"{what}: {detail}")
    return StorageError(f"{what} failed: {detail}")


def connection_broken(exc: BaseException) -> bool:
    """Whether ``exc`` leaves its connection unfit for another statement."""
    if isinstance(exc, asyncpg.PostgresError):
        code = str(getattr(exc, "sqlstate", "") or "")
        return code.startswith(_LOST_CLASSES) or code in _LOST
    return isinstance(
        exc, (asyncpg.InternalClientError, asyncpg.InterfaceError, OSError, asyncio.TimeoutError)
    )
