"""``storage_core.sync`` on the real PostgreSQL server: every method, many
threads, and no thread or connection left after close (``pg_stat_activity``)."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from storage_core import ClosedError
from storage_core.sync import make_storage
from storage_core_conformance.sync import check_every_method, hammer


@pytest.fixture
def own_database(postgres_server: Any) -> Iterator[str]:
    """A database only this test connects to, dropped afterwards."""
    with postgres_server.fresh_database("storage_core_sync") as name:
        yield name


def _connections(server: Any, database: str) -> int:
    async def count() -> int:
        conn = await server.admin()
        try:
            found: int = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", database
            )
            return found
        finally:
            await conn.close()

    return asyncio.run(count())


def test_every_method_round_trips(postgres_database_url: str) -> None:
    check_every_method(make_storage(postgres_database_url))


def test_many_calls_from_many_threads_leave_no_thread_or_connection(
    postgres_server: Any, own_database: str
) -> None:
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    storage = make_storage(postgres_server.url_for(own_database), skip_consecutive_roles=False)
    hammer(storage, threads=8, calls=10_000)
    assert _connections(postgres_server, own_database) > 0  # the probe sees them
    storage.close()
    assert time.monotonic() - started < 60
    assert set(threading.enumerate()) == threads_before
    # The server ends a backend process a moment after the client hangs up;
    # a connection left open would stay.
    deadline = time.monotonic() + 5
    while _connections(postgres_server, own_database) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _connections(postgres_server, own_database) == 0


def test_the_password_is_in_no_repr_or_error(postgres_server: Any, own_database: str) -> None:
    password = "pw-" + secrets.token_hex(8)  # the test server trusts: any password logs in
    host = f"{postgres_server.user}:{password}@{postgres_server.host}:{postgres_server.port}"
    storage = make_storage(f"postgresql://{host}/{own_database}")
    storage.save_chat_message("u", "s", "a", {"role": "user", "content": "hi"})
    assert password not in repr(storage)
    assert password not in storage.url
    storage.close()
    with pytest.raises(ClosedError) as caught:
        storage.fetch_chat("u", "s", "a")
    assert password not in str(caught.value)
