"""Creating libsql-client clients.

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

import contextlib
from typing import Any

import aiohttp
import libsql_client

__all__ = ["abandon_client", "create_client"]

try:
    from libsql_client.hrana.client import HranaClient
    from libsql_client.hrana.conn import HranaConn
except ImportError:  # pragma: no cover - another libsql-client layout
    HranaClient = HranaConn = None


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
