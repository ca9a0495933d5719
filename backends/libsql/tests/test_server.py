"""The libSQL backend against real sqld servers: errors, tokens, replicas,
restarts, timeouts and writers on several clients."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from libsql_client import LibsqlError

from storage_core import (
    AuthenticationError,
    RetryPolicy,
    StorageError,
    TransientError,
    make_storage,
)
from storage_core_sqlite import sql

pytestmark = pytest.mark.asyncio

NO_RETRY = RetryPolicy(attempts=1)


def msg(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": text}]}


def chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def assert_no_token(token: str, exc: BaseException, log_text: str) -> None:
    for item in chain(exc):
        assert token not in str(item)
        assert token not in repr(item)
        assert all(token not in str(arg) for arg in item.args)
    assert token not in log_text


# -- tokens ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "ws"])
@pytest.mark.parametrize("kind", ["missing", "wrong", "tampered"])
async def test_rejected_token_is_authentication_error(
    sqld_auth_server: Any, scheme: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good: str = sqld_auth_server.token
    token = {"missing": None, "wrong": "not-a-jwt-but-a-secret-value",
             "tampered": good[:-6] + "AAAAAA"}[kind]
    url = f"{scheme}://127.0.0.1:{sqld_auth_server.port}"
    storage = make_storage(url, auth_token=token) if token else make_storage(url)
    try:
        with pytest.raises(AuthenticationError) as info:
            await storage.fetch_chat("u", "s", "a")
    finally:
        await storage.close()
    assert info.value.__cause__ is not None
    assert not isinstance(info.value.__cause__, StorageError)
    if token:
        assert_no_token(token, info.value, caplog.text)
        assert token not in repr(storage) and token not in storage.url
    assert_no_token(good, info.value, caplog.text)


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_valid_token_from_url_parameter(sqld_auth_server: Any, scheme: str) -> None:
    token = sqld_auth_server.token
    url = f"{scheme}://127.0.0.1:{sqld_auth_server.port}?authToken={token}"
    async with make_storage(url) as storage:
        saved = await storage.save_chat_message("tok-u", "s", "a", msg("user", "hi"))
        assert saved[-1].content == [{"text": "hi"}]
        assert token not in repr(storage) and token not in storage.url


# -- unreachable, restarting, hanging servers ------------------------------


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_unreachable_server_is_transient(scheme: str) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connection refused
        storage = make_storage(f"{scheme}://127.0.0.1:{port}", retry=NO_RETRY)
        with pytest.raises(TransientError) as info:
            await storage.save_chat_message("u", "s", "a", msg("user", "x"))
    assert not info.value.ambiguous, "nothing was sent"
    assert isinstance(info.value.__cause__, (aiohttp.ClientError, OSError, LibsqlError))
    await storage.close()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_restarted_server_is_reached_again(sqld_launcher: Any, scheme: str) -> None:
    server = sqld_launcher()
    storage = make_storage(f"{scheme}://127.0.0.1:{server.port}", retry=NO_RETRY)
    try:
        await storage.save_chat_message("u", "s", "a", msg("user", "before"))
        server.stop()
        with pytest.raises(TransientError):
            await storage.fetch_chat("u", "s", "a")
        server.restart()
        history = await storage.save_chat_message("u", "s", "a", msg("assistant", "after"))
        assert [m.content[0]["text"] for m in history] == ["before", "after"]
    finally:
        await storage.close()


def _wait_until_stopped(pid: int, seconds: float = 5.0) -> None:
    """Until the kernel reports every thread of ``pid`` stopped (state T):
    SIGSTOP reaches a busy multi-threaded process a moment after it is sent."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        states = []
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        if states and all(state in ("T", "t") for state in states):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop within {seconds} s")


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_stalled_server_times_out_and_is_restarted(sqld_launcher: Any, scheme: str) -> None:
    """A sqld that stops answering (here SIGSTOP) fails writes with the "no
    answer" timeout, is seen as stalled by ``answers_writes``, and works again
    with its data after a kill and a start: what conftest.py does after a
    failed test."""
    server = sqld_launcher()
    storage = make_storage(f"{scheme}://127.0.0.1:{server.port}?timeout=1", retry=NO_RETRY)
    try:
        await storage.save_chat_message("u", "s", "a", msg("user", "before"))
        assert server.answers_writes(2)
        os.kill(server.process.pid, signal.SIGSTOP)
        _wait_until_stopped(server.process.pid)
        try:
            with pytest.raises(TransientError, match="no answer from the libSQL server") as info:
                await storage.save_chat_message("u", "s", "a", msg("assistant", "lost?"))
            assert info.value.ambiguous
            assert not server.answers_writes(1)
        finally:
            server.kill()
        server.start()
        assert server.answers_writes(2)
        history = await storage.save_chat_message("u", "s", "a", msg("assistant", "after"))
        assert [m.content[0]["text"] for m in history] == ["before", "after"]
    finally:
        await storage.close()


async def test_too_many_requests_are_retried(
    sqld_launcher: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that admits one request at a time answers the others with
    HTTP 429; those saves are retried (nothing ran) and all of them land."""
    server = sqld_launcher("--max-concurrent-requests", "2")
    retry = RetryPolicy(attempts=20, initial_delay=0.01, max_delay=0.2)
    storages = [make_storage(server.http_url, retry=retry) for _ in range(4)]
    caplog.set_level(logging.DEBUG, logger="storage_core.retry")

    def refused() -> bool:
        return any("429" in r.getMessage() for r in caplog.records)

    try:
        await storages[0].initialize()

        async def save_five(n: int, session: str) -> None:
            for i in range(5):
                role = "user" if i % 2 == 0 else "assistant"
                await storages[n].append_messages("busy", session, f"a{n}", [msg(role, str(i))])

        # Whether requests overlap enough to be refused depends on timing (a
        # loaded machine may serialise them): rounds until one was refused.
        for round_ in range(10):
            session = f"s{round_}"
            await asyncio.gather(*(save_five(n, session) for n in range(4)))
            for n in range(4):
                history = await storages[n].fetch_chat("busy", session, f"a{n}")
                assert [m.index for m in history] == [0, 1, 2, 3, 4]
            if refused():
                break
    finally:
        for storage in storages:
            await storage.close()
    assert refused(), "no request was refused in 10 rounds"


class SilentServer:
    """Accepts TCP connections and never answers: a hung server."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_every_request_has_a_timeout(scheme: str) -> None:
    server = SilentServer()
    storage = make_storage(f"{scheme}://127.0.0.1:{server.port}?timeout=0.5", retry=NO_RETRY)
    loop = asyncio.get_running_loop()
    try:
        started = loop.time()
        with pytest.raises(TransientError) as info:
            await asyncio.wait_for(storage.backend.append(_request()), 10)
        assert info.value.ambiguous, "a write with no answer may have been committed"
        with pytest.raises(TransientError) as info:
            await asyncio.wait_for(storage.backend.fetch(_request().key, None), 10)
        assert not info.value.ambiguous
        assert loop.time() - started < 5
    finally:
        await storage.close()
        server.close()


def _request() -> Any:
    from storage_core import AppendRequest, ConversationKey, NewRow

    return AppendRequest(
        key=ConversationKey("u", "s", "a"),
        rows=[NewRow("user", "[]", 1)],
        skip_same_role=True,
        keep=None,
        history=True,
        history_limit=None,
    )


# -- errors translated -----------------------------------------------------


async def test_sql_error_keeps_the_driver_error_as_cause(sqld_server: Any) -> None:
    from storage_core_libsql import LibsqlBackend

    async with make_storage(sqld_server.http_url) as storage:
        backend = storage.backend
        assert isinstance(backend, LibsqlBackend)
        with pytest.raises(StorageError) as info:
            await backend._writer.query("probe", "SELECT * FROM no_such_table", ())
        assert isinstance(info.value.__cause__, LibsqlError)


async def test_a_websocket_stream_is_reused_only_after_a_clean_request(
    sqld_server: Any,
) -> None:
    """A stream whose batch failed is closed (it may hold what the failure
    left), and the next request runs on a new one and sees nothing of it."""
    import libsql_client

    from storage_core_libsql import _driver

    table = f"streams_{os.getpid()}_{time.monotonic_ns()}"
    client = _driver.create_client(sqld_server.ws_url, None)
    try:
        await _driver.batch(client, [libsql_client.Statement(
            f"CREATE TABLE {table} (i INTEGER PRIMARY KEY)")])
        (kept,) = client._idle
        assert (await _driver.execute(client, libsql_client.Statement("SELECT 1"))).rows == [(1,)]
        assert client._idle == [kept]  # the same stream again
        insert = libsql_client.Statement(f"INSERT INTO {table} VALUES (1)")
        with pytest.raises(LibsqlError, match="UNIQUE"):
            await _driver.batch(client, [insert, insert])
        assert kept.closed and client._idle == []
        count = await _driver.execute(client, libsql_client.Statement(
            f"SELECT count(*) FROM {table}"))
        assert count.rows == [(0,)]
        assert len(client._idle) == 1 and client._idle[0] is not kept
    finally:
        await client.close()


# -- replicas ----------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_writes_through_a_replica_reach_the_primary(
    sqld_replica_pair: Any, scheme: str
) -> None:
    replica = f"{scheme}://127.0.0.1:{sqld_replica_pair.replica.port}?replica=1"
    primary = f"{scheme}://127.0.0.1:{sqld_replica_pair.primary.port}"
    user = f"fwd-{scheme}"
    async with make_storage(replica) as via_replica, make_storage(primary) as on_primary:
        assert not via_replica.capabilities.read_your_writes
        saved = await via_replica.save_chat_messages(
            user, "s", "a", [msg("user", "q"), msg("assistant", "a")]
        )
        # The save's own history is read in the write transaction, on the primary.
        assert [m.index for m in saved] == [0, 1]
        stored = await on_primary.fetch_chat(user, "s", "a")
        assert [m.content[0]["text"] for m in stored] == ["q", "a"]


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_replica_with_primary_reads_its_own_writes(
    sqld_replica_pair: Any, scheme: str
) -> None:
    replica = f"{scheme}://127.0.0.1:{sqld_replica_pair.replica.port}"
    primary = f"{scheme}://127.0.0.1:{sqld_replica_pair.primary.port}"
    user = f"ryw-{scheme}"
    async with make_storage(replica, primary_url=primary) as storage:
        for i in range(60):
            role = "user" if i % 2 == 0 else "assistant"
            await storage.append_messages(user, "s", "a", [msg(role, str(i))])
            history = await storage.fetch_chat(user, "s", "a")
            assert len(history) == i + 1
            sessions = await storage.list_sessions(user)
            assert sessions[0].message_count == i + 1


# -- several clients, one conversation -------------------------------------


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_writers_on_several_clients_keep_indexes_contiguous(
    sqld_server: Any, scheme: str
) -> None:
    url = f"{scheme}://127.0.0.1:{sqld_server.port}"
    user = f"multi-{scheme}"
    storages = [make_storage(url, skip_consecutive_roles=False) for _ in range(8)]

    async def writer(storage: Any, n: int) -> None:
        for i in range(10):
            history = await storage.save_chat_message(
                user, "s", "a", msg("user", f"{n}-{i}"), max_history_size=5
            )
            indexes = [m.index for m in history]
            assert indexes == list(range(indexes[0], indexes[0] + len(indexes)))
            assert len(history) <= 5

    try:
        await asyncio.gather(*(writer(s, n) for n, s in enumerate(storages) for _ in range(2)))
        final = await storages[0].fetch_chat(user, "s", "a")
        assert [m.index for m in final] == list(range(155, 160))
    finally:
        for storage in storages:
            await storage.close()


# -- whole-table tools -------------------------------------------------------


async def test_table_tools_on_a_server(sqld_launcher: Any) -> None:
    from storage_core import TableRow, TableTools

    server = sqld_launcher()
    async with make_storage(server.http_url) as source, make_storage(server.ws_url) as same:
        backend = source.backend
        assert isinstance(backend, TableTools)
        rows = [TableRow("u", "s", "a", i, "user", "[]", 1000 + i) for i in range(5)]
        assert await backend.import_rows(rows) == 5
        assert await backend.import_rows(rows[:2]) == 0, "existing keys are left alone"
        first = await backend.export_rows(None, 3)
        rest = await backend.export_rows(first[-1], 10)
        assert list(first) + list(rest) == rows
        facts = await backend.describe()
        assert facts["schema_version"] == sql.SCHEMA_VERSION and facts["row_count"] == 5
        assert "idx_conversations_lookup" in facts["indexes"]  # type: ignore[operator]
        assert await backend.prune(1003) == 0, "the conversation has a newer message"
        assert await backend.prune(2000) == 5
        assert await same.fetch_chat("u", "s", "a") == []
