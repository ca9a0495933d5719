"""Many writers on one conversation: the database serialises them.

Each process runs 16 tasks; 4 processes append to the same conversation at
once, straight to the server and through PgBouncer. Afterwards the indexes
are exactly 0..N-1, each message stored once.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from typing import Any

import pytest

from storage_core import make_storage

PROCESSES = 4
TASKS = 16
SAVES_PER_TASK = 5

_WORKER = """
import asyncio, json, sys
from storage_core import make_storage

async def main(url, user, worker, tasks, saves):
    async with make_storage(url, skip_consecutive_roles=False) as storage:
        async def task(t):
            for n in range(saves):
                role = "user" if n % 2 == 0 else "assistant"
                await storage.save_chat_message(
                    user, "s", "a", {"role": role, "content": f"{worker}-{t}-{n}"})
        await asyncio.gather(*(task(t) for t in range(tasks)))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


async def _run_workers(url: str, user: str) -> None:
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", _WORKER, url, user, str(w), str(TASKS), str(SAVES_PER_TASK),
            stderr=subprocess.PIPE,
        )
        for w in range(PROCESSES)
    ]
    results = await asyncio.gather(*(p.communicate() for p in procs))
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()


@pytest.fixture(params=["direct", "pgbouncer"])
def url(request: pytest.FixtureRequest) -> str:
    name = "postgres_database_url" if request.param == "direct" else "pgbouncer_database_url"
    value: str = request.getfixturevalue(name)
    return value


@pytest.mark.asyncio
async def test_processes_and_tasks_leave_contiguous_indexes(url: str) -> None:
    user = f"conc-{secrets.token_hex(4)}"
    await _run_workers(url, user)
    async with make_storage(url) as storage:
        history = await storage.fetch_chat(user, "s", "a")
    total = PROCESSES * TASKS * SAVES_PER_TASK
    assert [m.index for m in history] == list(range(total))
    contents = sorted(m.content for m in history)
    expected = sorted(
        f"{w}-{t}-{n}"
        for w in range(PROCESSES) for t in range(TASKS) for n in range(SAVES_PER_TASK)
    )
    assert contents == expected  # nothing lost, nothing duplicated


@pytest.mark.asyncio
async def test_concurrent_saves_return_the_state_right_after_themselves(url: str) -> None:
    """The history a save returns is read under the conversation's lock: it
    ends with the message the save stored and holds exactly the newest
    ``max_history_size`` rows, whatever the other writers do."""
    user = f"trim-{secrets.token_hex(4)}"
    keep = 10
    async with make_storage(url, skip_consecutive_roles=False, max_size=16) as storage:

        async def task(t: int) -> list[Any]:
            seen = []
            for n in range(8):
                history = await storage.save_chat_message(
                    user, "s", "a", {"role": "user", "content": f"{t}-{n}"},
                    max_history_size=keep,
                )
                seen.append((f"{t}-{n}", history))
            return seen

        results = await asyncio.gather(*(task(t) for t in range(16)))
        final = await storage.fetch_chat(user, "s", "a")
    for seen in results:
        for content, history in seen:
            indexes = [m.index for m in history]
            assert history[-1].content == content
            assert len(history) == min(keep, indexes[-1] + 1)
            assert indexes == list(range(indexes[-1] - len(history) + 1, indexes[-1] + 1))
    assert [m.index for m in final] == list(range(16 * 8 - keep, 16 * 8))
    assert json.dumps([m.content for m in final])  # decodable


@pytest.mark.asyncio
async def test_concurrent_role_rule_is_atomic(url: str) -> None:
    """Many writers saving the same role at once: exactly one is stored."""
    user = f"role-{secrets.token_hex(4)}"
    async with make_storage(url, max_size=16) as storage:
        await asyncio.gather(*(
            storage.save_chat_message(user, "s", "a", {"role": "user", "content": i})
            for i in range(32)
        ))
        history = await storage.fetch_chat(user, "s", "a")
    assert [m.index for m in history] == [0]


@pytest.mark.asyncio
async def test_initialize_from_many_sessions_at_once(url: str) -> None:
    """Twelve storages (each its own pool and server sessions) create one new
    schema at the same moment: all succeed, and it works afterwards."""
    schema = f"init_{secrets.token_hex(4)}"
    sep = "&" if "?" in url else "?"
    storages = [make_storage(f"{url}{sep}schema={schema}&min_size=1&max_size=1")
                for _ in range(12)]
    await asyncio.gather(*(s.initialize() for s in storages))
    await storages[0].save_chat_message("u", "s", "a", {"role": "user", "content": "x"})
    assert [m.index for m in await storages[-1].fetch_chat("u", "s", "a")] == [0]
    await asyncio.gather(*(s.close() for s in storages))
