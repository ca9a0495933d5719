"""Translation of driver errors into storage_core errors (no server needed)."""

from __future__ import annotations

from libsql_client import LibsqlError

from storage_core import AuthenticationError, StorageError, TransientError
from storage_core_libsql._errors import response_refused, translate


def test_busy_and_auth_codes_are_translated() -> None:
    busy = translate(LibsqlError("SQLite error: database is locked", "SQLITE_BUSY"),
                     "append", write=True)
    assert isinstance(busy, TransientError) and not busy.ambiguous
    for code in ("AUTH_HEADER_NOT_FOUND", "AUTH_JWT_INVALID"):
        assert isinstance(translate(LibsqlError("no", code), "x", write=False),
                          AuthenticationError)
    http401 = LibsqlError("Server returned HTTP status 401", "SERVER_ERROR")
    assert isinstance(translate(http401, "x", write=False), AuthenticationError)
    http429 = LibsqlError("Server returned HTTP status 429", "SERVER_ERROR")
    overloaded = translate(http429, "append", write=True)
    assert isinstance(overloaded, TransientError) and not overloaded.ambiguous
    http502 = LibsqlError("Server returned HTTP status 502", "SERVER_ERROR")
    error = translate(http502, "append", write=True)
    assert isinstance(error, TransientError) and error.ambiguous
    closed = translate(LibsqlError("WebSocket was closed", "HRANA_WEBSOCKET_ERROR"), "x",
                       write=True)
    assert isinstance(closed, TransientError) and closed.ambiguous
    sql_error = translate(LibsqlError("no such table: t", "SQL_INPUT_ERROR"), "x", write=True)
    assert type(sql_error) is StorageError
    secret = translate(LibsqlError("echo secret-token-123", "SQL_INPUT_ERROR"), "x",
                       write=False, token="secret-token-123")
    assert "secret-token-123" not in str(secret)


def _raised(cause: LibsqlError) -> StorageError:
    """The error as `_Server` raises it: translated, ``from`` the driver's."""
    try:
        raise translate(cause, "fetch_chat", write=False) from cause
    except StorageError as exc:
        return exc


def test_a_refused_response_is_told_from_other_failures() -> None:
    assert response_refused(_raised(LibsqlError("Response is too large", "RESPONSE_TOO_LARGE")))
    # sqld's v1 HTTP batch answers a response over its limit with a bare 500.
    assert response_refused(_raised(LibsqlError("Server returned HTTP status 500",
                                                "SERVER_ERROR")))
    for other in (LibsqlError("Server returned HTTP status 502", "SERVER_ERROR"),
                  LibsqlError("SQLite error: database is locked", "SQLITE_BUSY"),
                  LibsqlError("no such table: t", "SQL_INPUT_ERROR")):
        assert not response_refused(_raised(other))
    assert not response_refused(StorageError("fetch_chat failed: RESPONSE_TOO_LARGE"))
