"""``storage-core copy`` into PostgreSQL: 10,000 messages, then a re-run adds nothing."""

from __future__ import annotations

import asyncio
import io
import json
import uuid

import pytest

from storage_core import make_storage
from storage_core.backend import TableRow, parse_url
from storage_core.cli import main


def test_copy_ten_thousand_messages_and_rerun(
    postgres_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"memory://copy-{uuid.uuid4().hex}"
    user = f"copy-{uuid.uuid4().hex[:8]}"
    rows = [
        TableRow(user, f"s{c}", "agent", i, "user" if i % 2 == 0 else "assistant",
                 json.dumps([{"text": f"{c}-{i}"}]), 1_700_000_000_000 + i)
        for c in range(20) for i in range(500)
    ]

    async def seed() -> None:
        async with make_storage(source) as storage:
            for start in range(0, len(rows), 1000):  # max_batch_size per import
                assert await storage.import_rows(rows[start:start + 1000]) == 1000
    asyncio.run(seed())

    out = io.StringIO()
    assert main(["copy", source, postgres_database_url], out=out) == 0
    assert "inserted 10000, already present 0" in out.getvalue()
    progress = capsys.readouterr().err
    assert "10000/10000" in progress  # the bar shows counts (and a rate)

    out = io.StringIO()
    assert main(["copy", source, postgres_database_url, "-q"], out=out) == 0
    assert "inserted 0, already present 10000" in out.getvalue()

    async def check() -> None:
        async with make_storage(postgres_database_url) as storage:
            sessions = await storage.list_sessions(user)
            assert sum(s.message_count for s in sessions) == 10_000
            history = await storage.fetch_chat(user, "s3", "agent")
            assert [m.index for m in history] == list(range(500))
            assert await storage.delete_user(user) == 10_000
    asyncio.run(check())


def test_copy_errors_name_the_side_that_failed(
    postgres_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # (A mistyped SQLite source is tests/test_cli_safety.py's: this session
    # installs PostgreSQL alone.) A database the server does not have, as the
    # source and then as the target: the error names the side (exit 2), shows
    # no password, and nothing is created.
    server = parse_url(postgres_database_url)
    no_db = (f"postgresql://{server.username or 'postgres'}:hunter2@{server.host}:"
             f"{server.port or 5432}/storage_core_no_such_database")
    assert main(["copy", no_db, postgres_database_url, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("storage-core: error: source: ") and len(err.splitlines()) == 1
    assert "does not exist" in err and "hunter2" not in err

    source = f"memory://copy-{uuid.uuid4().hex}"
    assert main(["copy", source, no_db, "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("storage-core: error: target: ") and len(err.splitlines()) == 1
    assert "does not exist" in err and "hunter2" not in err
