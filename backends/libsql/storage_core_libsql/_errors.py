"""Turning libsql-client and aiohttp exceptions into storage_core errors.

The caller raises the result ``from`` the driver's exception, so the original
stays available as ``__cause__``. Messages name the operation and the
driver's error code and text; the auth token is never part of them (the
driver does not echo it, and `translate` removes it all the same).
"""

from __future__ import annotations

import re

import aiohttp
from libsql_client import LibsqlError

from storage_core import AuthenticationError, StorageError, TransientError
from storage_core.backend import REDACTED

__all__ = ["response_refused", "timeout_error", "translate"]

# Hrana error codes for a rejected or missing token (sqld, Turso).
_AUTH_CODES = frozenset(
    {"AUTH_HEADER_NOT_FOUND", "AUTH_HEADER_MALFORMED", "AUTH_JWT_INVALID", "AUTH_JWT_EXPIRED",
     "AUTH_JWT_INVALID_FORMAT", "AUTH_JWT_NOT_ALLOWED", "AUTH_UNAUTHORIZED", "UNAUTHORIZED"}
)
# SQLite said "try again": nothing was committed (the batch rolled back).
_BUSY_CODES = frozenset({"SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_BUSY_SNAPSHOT"})
# The connection went away; a request on it may or may not have run.
_LINK_CODES = frozenset({"HRANA_WEBSOCKET_ERROR", "STREAM_CLOSED", "CLIENT_CLOSED"})
_HTTP_STATUS = re.compile(r"HTTP status (\d{3})")


def _clean(text: str, token: str | None) -> str:
    return text.replace(token, REDACTED) if token else text


def _http_status(exc: BaseException) -> int | None:
    if isinstance(exc, aiohttp.ClientResponseError):
        return exc.status
    if isinstance(exc, LibsqlError):
        match = _HTTP_STATUS.search(exc.explanation)
        if match:
            return int(match.group(1))
    return None


def translate(
    exc: BaseException, what: str, *, write: bool, token: str | None = None
) -> StorageError:
    """The storage_core error for a driver exception raised by ``what``.

    ``write`` says whether the request could have changed the database: a
    connection lost after such a request was sent makes the error ambiguous
    (the server may have committed it), so the core does not repeat it.
    """
    code = exc.code if isinstance(exc, LibsqlError) else type(exc).__name__
    detail = _clean(f"{code}: {exc.explanation}" if isinstance(exc, LibsqlError)
                    else f"{code}: {exc}", token)
    status = _http_status(exc)
    if status in (401, 403) or code in _AUTH_CODES:
        return AuthenticationError(f"{what}: the libSQL server rejected the auth token ({detail})")
    if code in _BUSY_CODES or (isinstance(exc, LibsqlError) and "database is locked" in detail):
        return TransientError(f"{what}: the database is busy ({detail})")
    if status == 429:
        # Too many requests (sqld's --max-concurrent-requests, Turso's rate
        # limits): refused before it ran.
        return TransientError(f"{what}: the libSQL server is overloaded ({detail})")
    if isinstance(exc, aiohttp.ClientConnectorError):
        # No connection was made, so nothing was sent.
        return TransientError(f"{what}: cannot reach the libSQL server ({detail})")
    if status is not None and status >= 500:
        return TransientError(
            f"{what}: the libSQL server failed ({detail})", ambiguous=write and status != 503
        )
    if code in _LINK_CODES or isinstance(exc, (aiohttp.ClientError, OSError)):
        return TransientError(
            f"{what}: lost the connection to the libSQL server ({detail})", ambiguous=write
        )
    return StorageError(f"{what} failed: {detail}")


def timeout_error(what: str, seconds: float, *, write: bool) -> TransientError:
    """The error for a request that got no answer in time."""
    return TransientError(
        f"{what}: no answer from the libSQL server within {seconds:g} s", ambiguous=write
    )


def response_refused(error: BaseException) -> bool:
    """Whether ``error`` (raised ``from`` the driver's exception) may be sqld
    refusing an answer over its size limit (``--max-response-size``):
    ``RESPONSE_TOO_LARGE``, or, for a batch over HTTP, where sqld's v1 API
    says no more than that the batch failed, an HTTP 500. Nothing was
    committed then (the batch rolled back), but a 500 can have other causes:
    a caller repeating a write on it must repeat it as a replay."""
    cause = error.__cause__
    if not isinstance(cause, LibsqlError):
        return False
    return cause.code == "RESPONSE_TOO_LARGE" or _http_status(cause) == 500
