"""Every public call is one round trip to the server.

Counted on the wire: the storage connects through a TCP proxy
(``round_trip_proxy`` in conftest.py) that counts how often the client
starts talking again after the server answered. With prepared statements,
asyncpg prepares a statement the first time a connection runs it (one more
exchange), so those calls are warmed up once first; without them
(``pgbouncer=1``) even the first call is one round trip.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from storage_core import ChatStorage, make_storage
from storage_core_conformance.wire import PUBLIC_CALLS, PublicCall

CALLS = PUBLIC_CALLS
Call = PublicCall


async def _count(proxy: Any, storage: ChatStorage, call: Call, user: str) -> int:
    proxy.round_trips = 0
    await call(storage, user)
    count: int = proxy.round_trips
    return count


@pytest.mark.asyncio
@pytest.mark.parametrize("query", ["", "pgbouncer=1"], ids=["prepared", "literal"])
async def test_each_call_is_one_round_trip(
    round_trip_proxy: Any, postgres_database: str, query: str
) -> None:
    options = "min_size=1&max_size=1" + (f"&{query}" if query else "")
    url = (f"postgresql://postgres@127.0.0.1:{round_trip_proxy.listen_port}/"
           f"{postgres_database}?{options}")
    user = f"rt-{secrets.token_hex(4)}"
    async with make_storage(url) as storage:
        # A history of a few hundred rows, so answers span many packets.
        for _ in range(4):
            await CALLS["save_chat_messages"](storage, user)
        first = {name: await _count(round_trip_proxy, storage, call, user)
                 for name, call in CALLS.items()}
        again = {name: await _count(round_trip_proxy, storage, call, user)
                 for name, call in CALLS.items()}
    assert again == dict.fromkeys(CALLS, 1)
    if query:  # no statement is ever prepared: the first call is one round trip too
        assert first == dict.fromkeys(CALLS, 1)


@pytest.mark.asyncio
async def test_initialize_of_a_ready_schema_is_one_round_trip(
    round_trip_proxy: Any, postgres_database: str, postgres_database_url: str
) -> None:
    async with make_storage(postgres_database_url):
        pass  # creates the schema
    url = (f"postgresql://postgres@127.0.0.1:{round_trip_proxy.listen_port}/"
           f"{postgres_database}?min_size=1&max_size=1&pgbouncer=1")
    storage = make_storage(url)
    await storage.initialize()  # the connection's start-up exchanges count too
    round_trip_proxy.round_trips = 0
    await storage.backend.initialize()  # already initialized: nothing sent
    assert round_trip_proxy.round_trips == 0
    await storage.close()
