"""Every public call is one round trip to sqld, over HTTP and over WebSocket.

Counted on the wire through the conformance package's ``RoundTripProxy``: it
counts how often the client starts talking again after the server answered,
so a request split over several packets, or several Hrana messages sent
together (open stream, batch, close stream), count once. Each storage is
warmed up first (a WebSocket's handshake and ``hello`` happen once per
connection, not per call).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from storage_core import make_storage
from storage_core_conformance.wire import PUBLIC_CALLS, PublicCall, RoundTripProxy

CALLS = PUBLIC_CALLS
Call = PublicCall


@pytest_asyncio.fixture
async def proxy(sqld_server: Any) -> AsyncIterator[RoundTripProxy]:
    proxy = RoundTripProxy("127.0.0.1", sqld_server.port)
    await proxy.start()
    yield proxy
    await proxy.stop()


@pytest.mark.asyncio
@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_each_call_is_one_round_trip(proxy: RoundTripProxy, scheme: str) -> None:
    user = f"rt-{secrets.token_hex(4)}"
    async with make_storage(f"{scheme}://127.0.0.1:{proxy.listen_port}") as storage:
        for call in CALLS.values():  # warm up: connections, and a few hundred rows
            await call(storage, user)
        for _ in range(3):
            await CALLS["save_chat_messages"](storage, user)
        counts = {}
        for name, call in CALLS.items():
            proxy.round_trips = 0
            await call(storage, user)
            counts[name] = proxy.round_trips
    assert counts == dict.fromkeys(CALLS, 1)
