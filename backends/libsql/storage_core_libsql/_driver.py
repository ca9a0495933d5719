"""Creating libsql-client clients, and sending statements through them.

`execute` and `batch` return `Result` (rows as plain tuples): on libsql-client
0.3's own clients they take the protocol's answer as it is and convert its
values in one pass, skipping the driver's ``ResultSet`` and ``Row`` objects
(whose conversion, value by value, cost more than the rest of a long read);
on any other client they use its public calls. Over a WebSocket they reuse
the streams of earlier requests that ended without an error, instead of
opening and closing a stream for each.

One change to the driver's defaults: its WebSocket client keeps aiohttp's
4 MiB limit on a received message, but a save returns the conversation and
one message may itself hold 4 MiB of content (the core's limit), so the
answer to an ordinary save can be larger. The WebSocket client made here
accepts messages of any size from the server, and waits for the server's
answer to its ``hello`` (where a token is accepted or refused) before it sends
requests. This reaches into
libsql-client 0.3's ``hrana`` modules; if they change, the driver's own
client is used as it is.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

import aiohttp
import libsql_client
from libsql_client import LibsqlError

__all__ = ["Result", "abandon_client", "batch", "create_client", "execute"]

try:
    from libsql_client.hrana.client import HranaClient
    from libsql_client.hrana.conn import HranaConn
    from libsql_client.hrana.convert import _batch_to_proto, _error_from_proto, _stmt_to_proto
    from libsql_client.http import HttpClient
except ImportError:  # pragma: no cover - another libsql-client layout
    HranaClient = HranaConn = HttpClient = None


# Streams a WebSocket client keeps open between requests. Each Hrana stream is
# a connection on the server: opening and closing one per request (as
# libsql-client does) doubles the time of a short request.
_IDLE_STREAMS = 8


class Result(NamedTuple):
    """One statement's answer: its rows, and how many rows it changed."""

    rows: list[tuple[Any, ...]]
    rows_affected: int


if HranaClient is not None and HranaConn is not None:

    class _UnlimitedConn(HranaConn):  # type: ignore[misc]
        async def _do_connect(self, session: Any, url: str) -> Any:
            return await session.ws_connect(
                url, protocols=["hrana2"], autoclose=False, autoping=True, max_msg_size=0
            )

    class _UnlimitedClient(HranaClient):  # type: ignore[misc]
        def _open_conn(self) -> Any:
            return _UnlimitedConn(self._session, self._url, self._auth_token)

        async def _handshake(self) -> None:
            # Send nothing before the server has answered ``hello``: a request
            # racing a rejected token fails with a closed socket instead of
            # the server's AUTH_* error.
            conn = self._conn
            if conn.exception is None:
                await conn.wait_connected()

        async def execute(self, *args: Any, **kwargs: Any) -> Any:
            await self._handshake()
            return await super().execute(*args, **kwargs)

        async def batch(self, *args: Any, **kwargs: Any) -> Any:
            await self._handshake()
            return await super().batch(*args, **kwargs)

        def __init__(self, url: str, auth_token: str | None) -> None:
            self._idle: list[Any] = []  # open streams of the connection, unused
            super().__init__(url, auth_token)

        def _stream(self) -> Any:
            """An idle stream of the current connection, else a new one."""
            while self._idle:
                stream = self._idle.pop()
                if stream._conn is self._conn and not stream.closed and (
                    self._conn.exception is None
                ):
                    return stream
            return self._open_stream()

        def _release(self, stream: Any, clean: bool) -> None:
            """Keep ``stream`` for the next request if it ended ``clean`` (no
            error: no transaction can be left open on it), else close it."""
            if clean and len(self._idle) < _IDLE_STREAMS and stream._conn is self._conn:
                self._idle.append(stream)
            else:
                stream.close()

        async def _on_stream(
            self, send: Callable[[Any], Awaitable[Any]], ok: Callable[[Any], bool]
        ) -> Any:
            """``send(stream)`` on a stream of `_stream`, which is kept for the
            next request when the answer is ``ok`` (and no exception came)."""
            await self._handshake()
            stream = self._stream()
            clean = False
            try:
                result = await send(stream)
                clean = ok(result)
                return result
            finally:
                self._release(stream, clean)

        async def execute_proto(self, stmt: Any) -> Any:
            """`execute`, answered with the protocol's result as it is."""
            proto = _stmt_to_proto(stmt)
            return await self._on_stream(lambda stream: stream.execute(proto), lambda _: True)

        async def batch_proto(self, stmts: list[Any]) -> Any:
            """`batch`, answered with the protocol's batch result as it is."""
            proto = _batch_to_proto(stmts)
            return await self._on_stream(lambda stream: stream.batch(proto),
                                         lambda result: not any(result["step_errors"]))


def create_client(url: str, auth_token: str | None) -> Any:
    """A libsql-client client for an ``http(s)://`` or ``ws(s)://`` URL (no query)."""
    if url.startswith(("ws:", "wss:")) and HranaClient is not None:
        return _UnlimitedClient(url, auth_token)
    return libsql_client.create_client(url, auth_token=auth_token)


def abandon_client(client: Any) -> None:
    """Give up ``client`` without awaiting: its event loop has stopped or closed.

    Both of libsql-client 0.3's clients keep an aiohttp session in
    ``_session``. The session is marked closed and its connector closes what
    it still can synchronously, so neither warns at garbage collection that
    it was never closed (through the dead loop's exception handler, which
    logs it as an error); on a closed loop the sockets are left to their
    transports' finalizers.
    """
    session = getattr(client, "_session", None)
    if not isinstance(session, aiohttp.ClientSession):
        return
    connector = session.connector
    session.detach()
    if connector is not None:
        with contextlib.suppress(RuntimeError):  # the loop is closed
            connector._close()


def _value(value: dict[str, Any]) -> Any:
    """A protocol value other than text (see `_result`)."""
    kind = value["type"]
    if kind == "integer":
        return int(value["value"])
    if kind == "null":
        return None
    if kind == "float":
        return float(value["value"])
    if kind == "blob":
        return base64.b64decode(value["base64"] + "====")
    raise LibsqlError(f"Unknown value type {kind!r}", "HRANA_PROTO_ERROR")


def _result(proto: dict[str, Any]) -> Result:
    """A protocol statement result as a `Result`; the values as
    libsql-client's ``Row`` holds them (text, the most common, inline)."""
    rows = [
        tuple([v["value"] if v["type"] == "text" else _value(v) for v in row])
        for row in proto["rows"]
    ]
    return Result(rows, int(proto["affected_row_count"]))


def _steps(proto: dict[str, Any], count: int) -> list[Result]:
    """The results of a batch's ``count`` statements from the protocol's
    batch result (steps: ``BEGIN``, the statements, ``COMMIT``, ``ROLLBACK``),
    checked as libsql-client checks them: any step's error is raised."""
    results, errors = proto["step_results"], proto["step_errors"]
    if len(results) != count + 3 or len(errors) != count + 3:
        raise LibsqlError("Server did not return the expected number of batch results",
                          "HRANA_PROTO_ERROR")
    for error in errors:
        if error is not None:
            raise _error_from_proto(error)
    out = []
    for step in results[1:-2]:
        if step is None:
            raise LibsqlError("Server did not return a result in batch", "HRANA_PROTO_ERROR")
        out.append(_result(step))
    return out


def _from_result_set(result: Any) -> Result:
    return Result([row.astuple() for row in result.rows], int(result.rows_affected))


async def execute(client: Any, stmt: libsql_client.Statement) -> Result:
    """One statement, in its own transaction."""
    if HttpClient is not None and isinstance(client, HttpClient):
        return _result((await client._send("POST", "v1/execute", {"stmt": _stmt_to_proto(stmt)}))
                       ["result"])
    if HranaClient is not None and isinstance(client, _UnlimitedClient):
        return _result(await client.execute_proto(stmt))
    return _from_result_set(await client.execute(stmt))


async def batch(client: Any, stmts: Sequence[libsql_client.Statement]) -> list[Result]:
    """Statements in one transaction (libsql-client's ``batch``)."""
    listed = list(stmts)
    if HttpClient is not None and isinstance(client, HttpClient):
        answer = await client._send("POST", "v1/batch", {"batch": _batch_to_proto(listed)})
        return _steps(answer["result"], len(listed))
    if HranaClient is not None and isinstance(client, _UnlimitedClient):
        return _steps(await client.batch_proto(listed), len(listed))
    return [_from_result_set(r) for r in await client.batch(listed)]
