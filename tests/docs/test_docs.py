"""Every Python code sample in the docs and the README runs, as written.

A sample that reads ``STORAGE_CORE_POSTGRES_URL`` runs against a fresh
database on the test server (that variable, default
``postgresql://postgres@127.0.0.1:5432/postgres``), dropped afterwards;
without a server it skips, and under CI (``CI=true``) it fails.
"""

from __future__ import annotations

import asyncio
import os
import re
import runpy
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from storage_core.backend import parse_url

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
FENCE = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
POSTGRES_URL_ENV = "STORAGE_CORE_POSTGRES_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
# The framework each integration page's samples need.
FRAMEWORKS = {"openai_agents": "agents", "langchain": "langchain_core"}


def samples() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        for n, match in enumerate(FENCE.finditer(page.read_text(encoding="utf-8")), 1):
            found.append((f"{page.relative_to(ROOT)}#{n}", match.group(1)))
    return found


def test_the_docs_have_samples() -> None:
    assert len(samples()) >= 5


def test_the_quickstart_has_a_postgresql_sample() -> None:
    assert any(
        where.startswith("docs/quickstart.md") and POSTGRES_URL_ENV in code
        for where, code in samples()
    )


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """The URL of a new database on the test server, dropped on exit."""
    asyncpg = pytest.importorskip("asyncpg")
    server = parse_url(os.environ.get(POSTGRES_URL_ENV, DEFAULT_POSTGRES_URL))
    name = f"storage_core_docs_{secrets.token_hex(6)}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(
            host=server.host or "127.0.0.1", port=server.port or 5432,
            user=server.username or "postgres",
            password=server.password.reveal() if server.password else None,
            database="postgres", timeout=5,
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
        reason = f"no PostgreSQL server at {server} ({type(exc).__name__}); set {POSTGRES_URL_ENV}"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{reason} (CI=true: a missing service is a failure)", pytrace=False)
        pytest.skip(reason)
    base = server.render(reveal=True).split("?", 1)[0].rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.mark.parametrize(("where", "code"), samples(), ids=[w for w, _ in samples()])
def test_sample_runs(
    where: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for adapter, framework in FRAMEWORKS.items():
        if f"storage_core.integrations.{adapter}" in code:
            pytest.importorskip(framework)  # installed by the tests nox session
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "sample.py"
    script.write_text(code, encoding="utf-8")
    if POSTGRES_URL_ENV not in code:
        runpy.run_path(str(script), run_name="__main__")
        return
    with fresh_postgres_database() as url:
        monkeypatch.setenv(POSTGRES_URL_ENV, url)
        runpy.run_path(str(script), run_name="__main__")
