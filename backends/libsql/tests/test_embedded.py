"""Embedded replicas (``file:local.db?sync_url=...``) against real sqld primaries.

Writes through the replica read back on the primary and locally; another
writer's rows arrive with a sync; the primary stopped and started again:
local reads go on, writes fail with TransientError and nothing is lost. The
primaries come from conftest.py. Needs the ``libsql`` package (the
``embedded`` extra): skipped without it locally, a failure under CI.
"""

from __future__ import annotations

import asyncio
import importlib.util
import multiprocessing
import os
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import libsql_client
import pytest

from storage_core import (
    AuthenticationError,
    ConfigurationError,
    RetryPolicy,
    TransientError,
    make_storage,
)
from storage_core_libsql._embedded import EmbeddedBackend, _bind

if importlib.util.find_spec("libsql") is None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("the libsql package (storage-core-libsql[embedded]) is required under CI",
                    pytrace=False)
    pytest.skip("the libsql package is not installed", allow_module_level=True)

NO_RETRY = RetryPolicy(attempts=1)


def replica_url(path: Path, primary: Any, **params: str) -> str:
    query = "".join(f"&{k}={quote(v, safe='')}" for k, v in params.items())
    return f"file:{path}?sync_url={quote(primary.http_url, safe='')}{query}"


def msg(role: str, text: str) -> dict[str, Any]:
    return {"role": role, "content": [{"text": text}]}


async def primary_rows(url: str, user: str) -> list[tuple[Any, ...]]:
    async with libsql_client.create_client(url) as client:
        result = await client.execute(
            "SELECT message_index, role, content, typeof(timestamp) FROM conversations "
            "WHERE user_id = ? ORDER BY message_index", [user])
    return [tuple(row) for row in result.rows]


# -- URLs and options ------------------------------------------------------


def test_url_forms(tmp_path: Path) -> None:
    storage = make_storage(
        f"file:{tmp_path}/r.db?sync_url=libsql%3A%2F%2Fdb.example.org&sync_interval=0.5"
        "&authToken=canary-secret-1"
    )
    backend = storage.backend
    assert isinstance(backend, EmbeddedBackend)
    assert backend.config.sync_url == "https://db.example.org"
    assert backend.config.sync_interval == 0.5
    assert backend.config.auth_token is not None
    assert backend.config.auth_token.reveal() == "canary-secret-1"
    assert "canary-secret-1" not in repr(storage) + repr(backend) + str(backend.config)
    off = make_storage(f"file:{tmp_path}/r.db", sync_url="http://127.0.0.1:9",
                       sync_interval=0, auth_token="t")
    assert isinstance(off.backend, EmbeddedBackend)
    assert off.backend.config.sync_interval is None
    assert off.backend.config.sync_url == "http://127.0.0.1:9"


@pytest.mark.parametrize(("url", "options", "words"), [
    ("file:{d}/r.db?sync_url=ws%3A%2F%2Fh%3A1", {}, "http://"),
    ("file:{d}/r.db?sync_url=http%3A%2F%2Fu%3Ap%40h%3A1", {}, "user name"),
    ("file:{d}/r.db?sync_url=http%3A%2F%2Fh%3A1&sync_interval=-1", {}, "sync_interval"),
    ("file:{d}/r.db?sync_url=http%3A%2F%2Fh%3A1&busy_timeout=5", {}, "busy_timeout"),
    ("file:{d}/r.db", {"sync_url": "http://h:1", "replica": True}, "replica"),
    ("file::memory:?sync_url=http%3A%2F%2Fh%3A1", {}, "memory"),
    ("file:{d}/r.db?sync_url=", {}, "sync_url"),
])
def test_bad_urls_are_refused(tmp_path: Path, url: str, options: dict[str, Any],
                              words: str) -> None:
    with pytest.raises(ConfigurationError, match=words):
        make_storage(url.format(d=tmp_path), **options)


def test_big_integers_are_bound_exactly() -> None:
    # libsql 0.1.x binds ints beyond 32 bits as floats: they go as text, cast back.
    text, params = _bind("SELECT ?1, ?3, ?2", (1, 2**40, 5))
    assert text == "SELECT ?1, ?3, CAST(?2 AS INTEGER)"
    assert params == (1, str(2**40), 5)
    text, params = _bind("SELECT ?, ?, ?", (2**31, True, -(2**63)))
    assert text == "SELECT CAST(? AS INTEGER), ?, CAST(? AS INTEGER)"
    assert params == (str(2**31), True, str(-(2**63)))


# -- against a primary -----------------------------------------------------


@pytest.mark.asyncio
async def test_writes_reach_the_primary_and_read_back_locally(
    sqld_server: Any, tmp_path: Path
) -> None:
    url = replica_url(tmp_path / "replica.db", sqld_server, sync_interval="0")
    async with make_storage(url) as storage:
        await storage.save_chat_messages("emb-u1", "s", "a", [msg("user", "hi"),
                                                               msg("assistant", "hello")])
        local = await storage.fetch_chat("emb-u1", "s", "a")
        assert [m.content for m in local] == [[{"text": "hi"}], [{"text": "hello"}]]
        assert await primary_rows(sqld_server.http_url, "emb-u1") == [
            (0, "user", '[{"text":"hi"}]', "integer"),
            (1, "assistant", '[{"text":"hello"}]', "integer"),
        ]
        # The calls run on the replica's worker thread, never on the loop's.
        backend = storage.backend
        assert isinstance(backend, EmbeddedBackend)
        ident = await backend._call("probe", lambda conn: threading.get_ident())
        assert ident != threading.get_ident()
        # Another writer, on the primary: seen here after a sync.
        async with libsql_client.create_client(sqld_server.http_url) as client:
            await client.execute(
                "INSERT INTO conversations VALUES ('emb-u1', 's', 'a', 2, 'user', "
                "'[{\"text\":\"from elsewhere\"}]', 5)")
        await backend.sync()
        assert len(await storage.fetch_chat("emb-u1", "s", "a")) == 3
    # The file is a replica: reopened, it has the rows before it syncs again.
    async with make_storage(url) as again:
        assert len(await again.fetch_chat("emb-u1", "s", "a")) == 3


@pytest.mark.asyncio
async def test_interval_sync_brings_other_writers_rows(sqld_server: Any, tmp_path: Path) -> None:
    url = replica_url(tmp_path / "replica.db", sqld_server, sync_interval="0.2")
    async with make_storage(url) as storage:
        await storage.save_chat_message("emb-u2", "s", "a", msg("user", "mine"))
        async with libsql_client.create_client(sqld_server.http_url) as client:
            await client.execute(
                "INSERT INTO conversations VALUES ('emb-u2', 's', 'a', 1, 'assistant', "
                "'[{\"text\":\"theirs\"}]', 5)")
        # No sync is asked for: the background one brings the row (the
        # bound of 100 rounds is generous, not a timing claim).
        for _ in range(100):
            if len(await storage.fetch_chat("emb-u2", "s", "a")) == 2:
                break
            await asyncio.sleep(0.1)
        assert len(await storage.fetch_chat("emb-u2", "s", "a")) == 2


@pytest.mark.asyncio
async def test_primary_restart(sqld_launcher: Any, tmp_path: Path) -> None:
    """Primary down: local reads go on, writes raise TransientError (nothing
    stored, the request id kept); back up: the repeated write is stored once."""
    primary = sqld_launcher()
    url = replica_url(tmp_path / "replica.db", primary, sync_interval="0")
    async with make_storage(url, retry=NO_RETRY) as storage:
        await storage.save_chat_messages("emb-u3", "s", "a", [msg("user", "one"),
                                                               msg("assistant", "two")])
        primary.kill()
        assert len(await storage.fetch_chat("emb-u3", "s", "a")) == 2
        assert len(await storage.fetch_all_chats("emb-u3", "s")) == 2
        with pytest.raises(TransientError) as failed:
            await storage.save_chat_message("emb-u3", "s", "a", msg("user", "three"),
                                            request_id="emb-r3")
        assert failed.value.request_id == "emb-r3"
        with pytest.raises(TransientError):
            await storage.delete_session("emb-u3", "s")
        assert len(await storage.fetch_chat("emb-u3", "s", "a")) == 2
        primary.start()
        stored = await storage.save_chat_message("emb-u3", "s", "a", msg("user", "three"),
                                                 request_id="emb-r3")
        again = await storage.save_chat_message("emb-u3", "s", "a", msg("user", "three"),
                                                request_id="emb-r3")
        assert [m.index for m in stored] == [m.index for m in again]
        assert [m.content[0]["text"] for m in await storage.fetch_chat("emb-u3", "s", "a")] == [
            "one", "two", "three"]
    assert [r[:2] for r in await primary_rows(primary.http_url, "emb-u3")] == [
        (0, "user"), (1, "assistant"), (2, "user")]


@pytest.mark.asyncio
async def test_opening_while_the_primary_is_down_is_transient(
    sqld_launcher: Any, tmp_path: Path
) -> None:
    primary = sqld_launcher()
    primary.kill()
    storage = make_storage(replica_url(tmp_path / "replica.db", primary), retry=NO_RETRY)
    with pytest.raises(TransientError):
        await storage.initialize()
    await storage.close()


@pytest.mark.asyncio
async def test_auth_token(sqld_auth_server: Any, tmp_path: Path) -> None:
    url = replica_url(tmp_path / "replica.db", sqld_auth_server)
    async with make_storage(url, auth_token=sqld_auth_server.token) as storage:
        await storage.save_chat_message("emb-u4", "s", "a", msg("user", "hi"))
        assert len(await storage.fetch_chat("emb-u4", "s", "a")) == 1
    wrong = make_storage(replica_url(tmp_path / "other.db", sqld_auth_server,
                                     authToken="canary-wrong-token"), retry=NO_RETRY)
    with pytest.raises(AuthenticationError) as refused:
        await wrong.initialize()
    await wrong.close()
    assert "canary-wrong-token" not in str(refused.value) + repr(refused.value)


def _open_in_child(url: str) -> str:
    async def run() -> str:
        try:
            async with make_storage(url, retry=NO_RETRY) as storage:
                await storage.fetch_chat("emb-u5", "s", "a")
        except ConfigurationError as exc:
            return str(exc)
        return "opened"

    return asyncio.run(run())


@pytest.mark.asyncio
async def test_one_process_per_replica_file(sqld_server: Any, tmp_path: Path) -> None:
    url = replica_url(tmp_path / "replica.db", sqld_server)
    async with make_storage(url) as storage, make_storage(url) as same_process:
        await storage.save_chat_message("emb-u5", "s", "a", msg("user", "hi"))
        assert len(await same_process.fetch_chat("emb-u5", "s", "a")) == 1
        context = multiprocessing.get_context("spawn")
        with context.Pool(1) as pool:
            answer = await asyncio.get_running_loop().run_in_executor(
                None, pool.apply, _open_in_child, (url,))
        assert "open in another process" in answer
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(_open_in_child, (url,)) == "opened"
