"""Paging through one user's 100,000 sessions, and scrolling back through one long
conversation, with the time of each page and the process's memory.

``python -m benchmarks.paging --url sqlite:////tmp/paging.db`` (or a
``postgresql://`` URL) fills the database through ``import_rows`` (one
``executemany`` / ``unnest`` statement per 1,000 rows, so the filling holds
one batch at a time), then pages through ``list_sessions(limit=, before=)``
and ``fetch_chat(before_index=)`` and prints one JSON object: pages, per-page
time (median, p95, max), total, and resident memory (RSS) before and after,
with the peak of Python allocations while paging (tracemalloc, optional as it
slows Python down). Finally it lists all the sessions in one call, for
comparison. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

from .memory import rss_mib

USER = "paging-bench"
LONG_SESSION = "long-conversation"


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rows(sessions: int, conversation: int) -> Iterator[Any]:
    """The rows to fill: ``sessions`` sessions of one message (times spread
    with ties every 7 sessions), then one conversation of ``conversation``
    messages."""
    from storage_core import TableRow

    content = json.dumps([{"text": "a message of a typical length for a chat turn"}])
    for n in range(sessions):
        yield TableRow(USER, f"s{n:06d}", "agent", 0, "user", content, 10_000_000 + n // 7)
    for i in range(conversation):
        role = "user" if i % 2 == 0 else "assistant"
        yield TableRow(USER, LONG_SESSION, "agent", i, role, content, 1_000 + i)


async def _fill(storage: Any, sessions: int, conversation: int, batch: int) -> float:
    started = time.perf_counter()
    await storage.delete_user(USER)
    chunk: list[Any] = []
    for row in _rows(sessions, conversation):
        chunk.append(row)
        if len(chunk) == batch:
            await storage.import_rows(chunk)
            chunk = []
    if chunk:
        await storage.import_rows(chunk)
    return time.perf_counter() - started


def _timings(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    if not ms:
        return {}
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return {"median_ms": statistics.median(ms), "p95_ms": p95, "max_ms": ms[-1],
            "min_ms": ms[0], "total_s": sum(ms) / 1000}


async def _page_sessions(storage: Any, limit: int, expected: int) -> dict[str, Any]:
    """Every page of the user's sessions, checked for order and count on the way
    (nothing kept but the last cursor, so memory stays flat)."""
    times: list[float] = []
    rss = [rss_mib()]
    before = None
    seen = 0
    while True:
        t0 = time.perf_counter()
        page = await storage.list_sessions(USER, limit=limit, before=before)
        times.append(time.perf_counter() - t0)
        rss.append(rss_mib())
        keys = [(-s.last_timestamp, s.session_id) for s in page]
        assert keys == sorted(keys), "a page is out of order"
        if before is not None and page:
            assert keys[0] > (-before.last_timestamp, before.session_id), "pages overlap"
        seen += len(page)
        if len(page) < limit:
            break
        before = page[-1]
    assert seen == expected, f"paged through {seen} sessions, expected {expected}"
    return {"page_size": limit, "pages": len(times), "sessions": seen, **_timings(times),
            "rss_mib_first": rss[0], "rss_mib_max": max(rss), "rss_mib_last": rss[-1]}


async def _scroll_back(storage: Any, window: int, windows: int, length: int) -> dict[str, Any]:
    """``windows`` windows of ``window`` messages, from the newest back."""
    times: list[float] = []
    rss = [rss_mib()]
    newest = await storage.fetch_chat(USER, LONG_SESSION, "agent", window)
    before = newest[0].index if newest else 0
    for _ in range(windows):
        t0 = time.perf_counter()
        messages = await storage.fetch_chat(USER, LONG_SESSION, "agent", window,
                                            before_index=before)
        times.append(time.perf_counter() - t0)
        rss.append(rss_mib())
        if not messages:
            break
        assert messages[-1].index == before - 1
        assert len(messages) == min(window, before)
        before = messages[0].index
    # The oldest window too: the cost must not depend on the position.
    t0 = time.perf_counter()
    oldest = await storage.fetch_chat(USER, LONG_SESSION, "agent", window, before_index=window)
    deepest = time.perf_counter() - t0
    assert [m.index for m in oldest] == list(range(min(window, length)))
    return {"window": window, "windows": len(times), "conversation_messages": length,
            **_timings(times), "oldest_window_ms": deepest * 1000,
            "rss_mib_first": rss[0], "rss_mib_max": max(rss)}


async def measure(url: str, sessions: int, conversation: int, page_size: int, window: int,
                  windows: int, trace: bool, keep: bool) -> dict[str, Any]:
    from storage_core import make_storage

    result: dict[str, Any] = {"url": url, "rss_mib_at_start": rss_mib()}
    async with make_storage(url) as storage:
        result["fill_s"] = await _fill(storage, sessions, conversation, 1000)
        result["backend"] = type(storage.backend).__name__
        result["rss_mib_after_fill"] = rss_mib()
        if trace:
            tracemalloc.start()
        expected = sessions + (1 if conversation else 0)  # the long conversation's session
        result["sessions"] = await _page_sessions(storage, page_size, expected)
        result["scroll_back"] = await _scroll_back(storage, window, windows, conversation)
        if trace:
            result["tracemalloc_peak_mib_while_paging"] = (
                tracemalloc.get_traced_memory()[1] / 2**20)
            tracemalloc.stop()
        result["rss_mib_after_paging"] = rss_mib()
        result["peak_rss_mib_after_paging"] = _peak_rss_mib()
        # For comparison: everything in one call (what paging avoids holding).
        t0 = time.perf_counter()
        everything = await storage.list_sessions(USER)
        result["one_call_listing"] = {
            "sessions": len(everything), "seconds": time.perf_counter() - t0,
            "rss_mib_after": rss_mib(), "peak_rss_mib_after": _peak_rss_mib(),
        }
        del everything
        if not keep:
            await storage.delete_user(USER)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--conversation", type=int, default=100_000,
                        help="messages of the long conversation scrolled back through")
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--windows", type=int, default=200)
    parser.add_argument("--tracemalloc", action="store_true",
                        help="also report the peak of Python allocations while paging")
    parser.add_argument("--keep", action="store_true", help="leave the rows in the database")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.url, args.sessions, args.conversation, args.page_size,
                                 args.window, args.windows, args.tracemalloc, args.keep))
    json.dump(result, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
