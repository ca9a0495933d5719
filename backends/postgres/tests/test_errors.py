"""Errors: bad credentials, an unreachable server, and secrets kept out of output."""

from __future__ import annotations

import logging
import socket
import traceback
from typing import Any

import asyncpg
import pytest

from storage_core import (
    AuthenticationError,
    ConfigurationError,
    RetryPolicy,
    TransientError,
    make_storage,
)


def _everything_shown(exc: BaseException) -> str:
    """Every text a user could see of an error: str, repr, the traceback with causes."""
    return "\n".join(
        [str(exc), repr(exc), *traceback.format_exception(type(exc), exc, exc.__traceback__)]
    )


@pytest.mark.asyncio
async def test_wrong_password_is_an_authentication_error_that_never_shows_it(
    pgbouncer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-" + pgbouncer.password[::-1]
    storage = make_storage(pgbouncer.url(password=wrong))
    assert wrong not in repr(storage) and wrong not in storage.url
    assert wrong not in repr(storage.backend)
    with pytest.raises(AuthenticationError) as info:
        await storage.initialize()
    # PgBouncer 1.18 reports it as 08P01 (ProtocolViolationError), PostgreSQL as
    # 28P01 (InvalidPasswordError): both are AuthenticationError.
    assert isinstance(info.value.__cause__, asyncpg.PostgresError)
    assert info.value.__cause__.sqlstate in ("28P01", "08P01")
    shown = _everything_shown(info.value) + caplog.text
    assert "authentication failed" in shown
    assert wrong not in shown
    assert pgbouncer.password not in shown
    await storage.close()


@pytest.mark.asyncio
async def test_right_password_through_pgbouncer_works_and_stays_hidden(pgbouncer: Any) -> None:
    storage = make_storage(pgbouncer.url())
    async with storage:
        await storage.save_chat_message("pw-user", "s", "a", {"role": "user", "content": "x"})
        assert pgbouncer.password not in repr(storage)
        assert pgbouncer.password not in repr(storage.backend)
        assert pgbouncer.password not in repr(storage.backend.config)  # type: ignore[attr-defined]
        await storage.delete_user("pw-user")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # closed again: nothing listens there


@pytest.mark.asyncio
async def test_unreachable_server_is_transient_after_the_core_retries() -> None:
    secret = "s3cret-pw-never-shown"
    url = f"postgresql://postgres:{secret}@127.0.0.1:{_closed_port()}/db?connect_timeout=1"
    storage = make_storage(url, retry=RetryPolicy(attempts=3, initial_delay=0.01))
    with pytest.raises(TransientError) as info:
        await storage.fetch_chat("u", "s", "a")
    assert isinstance(info.value.__cause__, OSError)
    assert not info.value.ambiguous
    assert secret not in _everything_shown(info.value)
    await storage.close()


@pytest.mark.asyncio
async def test_missing_database_is_a_configuration_error(postgres_server: Any) -> None:
    storage = make_storage(postgres_server.url_for("storage_core_no_such_database"))
    with pytest.raises(ConfigurationError):
        await storage.initialize()
    await storage.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("retries", [True, False], ids=["retried", "no-retries"])
async def test_lost_connection_during_a_save_is_settled_by_its_request_id(
    postgres_database_url: str, retries: bool
) -> None:
    """A save whose connection dies while the server works on it may have been
    committed: the backend reports it as ambiguous, the core repeats it with the
    same request id (here after the kill, once the lock is free), and it is
    stored once. Without retries the caller gets TransientError(ambiguous=True)
    with the request id, and repeating the call with it stores it once."""
    import asyncio

    user = f"amb-{retries}"
    retry = RetryPolicy() if retries else RetryPolicy(attempts=1)
    url = postgres_database_url + "?min_size=1&max_size=1"
    message = {"role": "user", "content": "x"}
    async with make_storage(url, retry=retry) as storage:
        await storage.delete_user(user)
        await storage.fetch_chat(user, "s", "a")
        backend: Any = storage.backend
        conn = await backend._pool.acquire()
        pid = conn.get_server_pid()
        backend._pool.release(conn)
        admin = await asyncpg.connect(postgres_database_url)
        try:
            # Hold the conversation's lock so the save waits on the server...
            await admin.execute("BEGIN")
            await admin.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                "length($1::text) || ':' || $1 || length($2::text) || ':' || $2 || $3::text, "
                "$4::bigint))", user, "s", "a", 0x5C0EC0DE)
            save = asyncio.create_task(storage.save_chat_message(user, "s", "a", message))
            await asyncio.sleep(0.3)
            # ...then kill its backend process, and free the lock.
            await admin.execute("SELECT pg_terminate_backend($1)", pid)
            await asyncio.sleep(0.3)
            await admin.execute("ROLLBACK")
            if retries:
                assert [m.index for m in await save] == [0]
            else:
                with pytest.raises(TransientError) as info:
                    await save
                assert info.value.ambiguous
                assert info.value.request_id is not None
                again = await storage.save_chat_message(
                    user, "s", "a", message, request_id=info.value.request_id
                )
                assert [m.index for m in again] == [0]
        finally:
            await admin.close()
        assert [m.index for m in await storage.fetch_chat(user, "s", "a")] == [0]


def test_secret_hygiene_probe_with_canary_passwords(pgbouncer: Any) -> None:
    """The conformance suite's probe: a wrong canary password (URL and keyword)
    and the right one, through every call, tracebacks, DEBUG logs and the CLI."""
    from storage_core_conformance.secrets import secret_leaks

    canary = "canary-" + pgbouncer.password[::-1]
    assert secret_leaks(pgbouncer.url(password=canary), canary) == []
    assert secret_leaks(pgbouncer.url(password="x"), canary, {"password": canary}) == []
    assert secret_leaks(pgbouncer.url(), pgbouncer.password) == []


def test_url_shapes_never_show_a_credential(
    postgres_database_url: str, pgbouncer: Any
) -> None:
    """Issue 17: the probe's leak-prone URL shapes, on a trusting server (the
    storage opens) and behind PgBouncer, which checks passwords (it fails)."""
    from storage_core_conformance.secrets import url_shape_leaks

    assert url_shape_leaks(postgres_database_url) == []
    assert url_shape_leaks(pgbouncer.url()) == []
