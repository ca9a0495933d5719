"""Paging on a database whose default collation is a natural-language one (ICU
en-US), where ``ORDER BY session_id`` would put ``a`` before ``B``: pages must
still follow the contract's order (session ids by code point)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Iterator

import asyncpg
import pytest

from storage_core import SessionInfo, make_storage

# Ids that sort differently by code point and by en-US rules.
NAMES = ["B", "a", "a-c", "ab", "Ab", "a_b", "b", "A.b", "z", "Z9", "_x", "-y"]


@pytest.fixture(scope="module")
def icu_database_url(postgres_server: object) -> Iterator[str]:
    server = postgres_server
    name = f"storage_core_icu_{secrets.token_hex(6)}"

    async def run(sql: str) -> None:
        conn = await server.admin()  # type: ignore[attr-defined]
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(
            f'CREATE DATABASE "{name}" TEMPLATE template0 ENCODING \'UTF8\' '
            "LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"))
    except asyncpg.PostgresError as exc:  # PostgreSQL before 15, or built without ICU
        pytest.skip(f"no ICU database: {exc}")
    try:
        yield server.url_for(name)  # type: ignore[attr-defined]
    finally:
        with contextlib.suppress(asyncpg.PostgresError):
            asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_pages_order_ids_by_code_point_under_icu(icu_database_url: str) -> None:
    async def go() -> None:
        async with make_storage(icu_database_url) as storage:
            for n, session in enumerate(NAMES):
                await storage.append_messages("u", session, "agent", [
                    {"role": "user", "content": [{"text": "x"}], "timestamp": 100 + n % 2}])
            full = await storage.list_sessions("u")
            want = sorted(NAMES, key=lambda s: (-(100 + NAMES.index(s) % 2), s))
            assert [s.session_id for s in full] == want
            for limit in (1, 2, 5):
                seen: list[SessionInfo] = []
                before = None
                while True:
                    page = await storage.list_sessions("u", limit=limit, before=before)
                    seen += page
                    if len(page) < limit:
                        break
                    before = page[-1]
                assert seen == full, f"limit {limit}"

    asyncio.run(go())
