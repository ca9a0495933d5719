"""Testing the wire: a TCP proxy that counts round trips.

For a backend's own tests ("each public call is one round trip"): point the
storage at the proxy, which forwards to the real server and counts each time
the client starts talking again after the server answered. However many
packets a request or its answer takes, one exchange counts once, and the
count does not depend on timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from storage_core import ChatStorage

__all__ = ["PUBLIC_CALLS", "PublicCall", "RoundTripProxy"]

PublicCall = Callable[[ChatStorage, str], Awaitable[Any]]

PUBLIC_CALLS: dict[str, PublicCall] = {
    "save_chat_message": lambda s, u: s.save_chat_message(
        u, "s", "a", {"role": "user", "content": "hi"}, max_history_size=100),
    "save_chat_messages": lambda s, u: s.save_chat_messages(
        u, "s", "a",
        [{"role": r, "content": [{"text": "x" * 500}]} for r in ["user", "assistant"] * 25],
        max_history_size=100),
    "append_messages": lambda s, u: s.append_messages(
        u, "s", "b", [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]),
    "fetch_chat": lambda s, u: s.fetch_chat(u, "s", "a"),
    "fetch_chat_limited": lambda s, u: s.fetch_chat(u, "s", "a", max_history_size=10),
    "fetch_all_chats": lambda s, u: s.fetch_all_chats(u, "s"),
    "list_sessions": lambda s, u: s.list_sessions(u),
    "delete_session": lambda s, u: s.delete_session(u, "other"),
    "delete_user": lambda s, u: s.delete_user(u + "-other"),
}
"""Every public call of ``ChatStorage`` for user ``u``, by name: what a
round-trip test counts. A 50-message batch saved a few times first gives
answers that span many packets."""


class RoundTripProxy:
    """A TCP proxy in front of the server that counts round trips.

    A round trip starts each time a client sends after the server has spoken
    (or for the first time): however many packets a request or its answer
    takes, one exchange counts once.
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.round_trips = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def listen_port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_connection(self.host, self.port)
        last = ["server"]

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, side: str) -> None:
            try:
                while data := await src.read(1 << 16):
                    if side == "client" and last[0] != "client":
                        self.round_trips += 1
                    last[0] = side
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        tasks = [
            asyncio.create_task(pump(client_r, server_w, "client")),
            asyncio.create_task(pump(server_r, client_w, "server")),
        ]
        self._tasks.update(tasks)
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.difference_update(tasks)
