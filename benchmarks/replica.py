"""Latency of a file, an embedded replica, a remote libSQL server and PostgreSQL.

``python -m benchmarks.replica`` starts a private sqld (the primary of the
replica and the remote target) and uses the PostgreSQL at
``$BENCH_POSTGRES_URL`` (default ``postgresql://postgres@127.0.0.1:5432/postgres``,
a fresh database that is dropped afterwards); targets that cannot run here
are reported as unavailable. For each target it times, one call at a time:
a save of one message, a save with ``max_history_size=50`` (history
returned, trimmed), a fetch of the newest 20 messages, a save followed by
that fetch (which must see the save), and for the replica
a ``sync()`` with nothing new and how long another writer's row takes to
arrive with ``sync_interval``. Prints a Markdown table (median and p95,
milliseconds). Not part of CI: the figures in docs/operations.md come from it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from storage_core import make_storage

from ._servers import Unavailable, fresh_postgres_database

USER, SESSION, AGENT = "replica-bench", "s", "a"


def _msg(i: int) -> dict[str, Any]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": f"m{i}"}]}


async def _timed(calls: int, call: Callable[[int], Awaitable[object]]) -> list[float]:
    out = []
    for i in range(calls):
        start = time.perf_counter()
        await call(i)
        out.append((time.perf_counter() - start) * 1000)
    return out


def _cell(samples: list[float]) -> str:
    if not samples:
        return "-"
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{statistics.median(ordered):.2f} / {p95:.2f}"


@asynccontextmanager
async def _sqld(workdir: Path) -> AsyncIterator[Any]:
    from storage_core_testing.sqld import Sqld, SqldUnavailable, find_sqld

    try:
        server = Sqld(await asyncio.to_thread(find_sqld), workdir / "sqld")
        await asyncio.to_thread(server.start)
    except SqldUnavailable as exc:
        raise Unavailable(str(exc)) from exc
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)


async def _measure(url: str, calls: int, **options: Any) -> dict[str, list[float]]:
    async with make_storage(url, skip_consecutive_roles=False, **options) as storage:
        for i in range(60):  # a conversation longer than the trim
            await storage.save_chat_message(USER, SESSION, AGENT, _msg(i))
        return {
            "save": await _timed(calls, lambda i: storage.save_chat_message(
                USER, SESSION, AGENT, _msg(i))),
            "save, max_history_size=50": await _timed(calls, lambda i: storage.save_chat_message(
                USER, SESSION, AGENT, _msg(i), max_history_size=50)),
            "fetch newest 20": await _timed(calls, lambda i: storage.fetch_chat(
                USER, SESSION, AGENT, max_history_size=20)),
            "save, then fetch newest 20": await _timed(calls, lambda i: _save_then_fetch(
                storage, i)),
        }


async def _save_then_fetch(storage: Any, i: int) -> None:
    # The fetch must see the save (read-your-writes): on the replica it waits
    # for the sync queued after the write.
    await storage.save_chat_message(USER, SESSION, AGENT, _msg(i))
    await storage.fetch_chat(USER, SESSION, AGENT, max_history_size=20)


async def _replica_extras(url: str, primary_url: str, calls: int) -> dict[str, list[float]]:
    import libsql_client

    async with make_storage(url) as storage:
        await storage.initialize()
        backend: Any = storage.backend
        sync = await _timed(calls, lambda i: backend.sync())
        lags = []
        async with libsql_client.create_client(primary_url) as client:
            for i in range(5):
                await client.execute(
                    "INSERT INTO conversations VALUES (?, 'lag', 'a', 0, 'user', '[]', 1)",
                    [f"lag-{i}"])
                start = time.perf_counter()
                while not await storage.fetch_chat(f"lag-{i}", "lag", "a"):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
                lags.append((time.perf_counter() - start) * 1000)
    return {"sync() with nothing new": sync, "another writer's row seen (sync_interval=1)": lags}


async def main(calls: int) -> str:
    rows: dict[str, dict[str, list[float]]] = {}
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="replica-bench-") as tmp:
        workdir = Path(tmp)
        async with AsyncExitStack() as stack:
            rows["file (SQLite, local)"] = await _measure(f"file:{workdir}/file.db", calls)
            try:
                server = await stack.enter_async_context(_sqld(workdir))
            except Unavailable as exc:
                notes.append(f"libSQL targets unavailable: {exc}")
                server = None
            if server is not None:
                replica = (f"file:{workdir}/replica.db?sync_url="
                           f"{quote(server.http_url, safe='')}&sync_interval=1")
                try:
                    rows["embedded replica of sqld"] = await _measure(replica, calls)
                    rows["embedded replica of sqld"].update(
                        await _replica_extras(replica, server.http_url, calls))
                except Exception as exc:  # reported, the other targets still run
                    notes.append(f"embedded replica unavailable: {type(exc).__name__}: {exc}")
                rows["remote libSQL (sqld, Hrana over HTTP)"] = await _measure(
                    server.http_url, calls)
            try:
                pg = await stack.enter_async_context(fresh_postgres_database())
                rows["PostgreSQL"] = await _measure(pg, calls)
            except Unavailable as exc:
                notes.append(f"PostgreSQL unavailable: {exc}")
    columns = ["save", "save, max_history_size=50", "fetch newest 20",
               "save, then fetch newest 20",
               "sync() with nothing new", "another writer's row seen (sync_interval=1)"]
    lines = ["| target | " + " | ".join(columns) + " |",
             "|---" * (len(columns) + 1) + "|"]
    for name, figures in rows.items():
        lines.append(f"| {name} | " + " | ".join(_cell(figures.get(c, [])) for c in columns)
                     + " |")
    lines.append("")
    lines.append(f"median / p95 in ms, {calls} calls each, one at a time, all on this machine.")
    lines += notes
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per figure")
    print(asyncio.run(main(parser.parse_args().calls)))
