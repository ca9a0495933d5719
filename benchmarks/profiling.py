"""Where a save and a fetch on SQLite spend their time.

``python -m benchmarks.profiling [--calls N] [--cprofile]`` prints, for our
SQLite backend against the raw aiosqlite floor on one file:

* the aiosqlite thread hops (queued calls) per operation, and the cost of one
  hop measured on its own;
* latency by layer: ``ChatStorage`` -> ``SqliteBackend`` -> raw driver, so the
  core's share and the backend's share show separately, with the event
  loop's own CPU time per call (the rest runs on aiosqlite's thread);
* the benchmark's same-work floors (insert + request record [+ trim] [+ read
  back] in one transaction, one trip) beside the calls they stand for;
* with ``--cprofile``, the top functions of each path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._data import CONTENT, CONTENT_JSON, Conv, now_ms
from ._raw import AiosqliteRaw
from ._stats import timed
from ._subjects import SameWork

Op = Callable[[], Awaitable[object]]
_INSERT = """INSERT INTO conversations (user_id, session_id, agent_id, message_index, role,
content, timestamp) VALUES (?, ?, ?, ?, ?, ?, ?)"""
_TRIM = """DELETE FROM conversations WHERE user_id = ? AND session_id = ? AND agent_id = ?
AND message_index <= ?"""
_NEWEST = """SELECT agent_id, message_index, role, content, timestamp FROM conversations
WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index DESC LIMIT ?"""


class HopCounter:
    """Counts calls queued to aiosqlite's worker thread, by function name."""

    def __init__(self) -> None:
        import aiosqlite

        self.counts: Counter[str] = Counter()
        self._cls: Any = aiosqlite.Connection
        self._orig: Any = self._cls._execute
        counter = self.counts
        orig: Callable[..., Awaitable[Any]] = self._orig

        async def counting(conn: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
            counter[getattr(fn, "__name__", repr(fn))] += 1
            return await orig(conn, fn, *args, **kwargs)

        self._patched = counting

    def __enter__(self) -> Counter[str]:
        self.counts.clear()
        self._cls._execute = self._patched
        return self.counts

    def __exit__(self, *exc: object) -> None:
        self._cls._execute = self._orig


async def _median(op: Op, calls: int) -> tuple[float, float]:
    """The median wall time of ``op`` in ms, and the event loop's own CPU time
    per call in ms (``time.thread_time`` on the loop's thread: what a call
    costs the loop, beside the driver's thread)."""
    for _ in range(min(20, calls)):
        await op()
    cpu = time.thread_time()
    walls = [await timed(op) for _ in range(calls)]
    return statistics.median(walls), (time.thread_time() - cpu) * 1000 / calls


def _profile(name: str, op: Op, calls: int, loop: asyncio.AbstractEventLoop) -> str:
    async def many() -> None:
        for _ in range(calls):
            await op()

    prof = cProfile.Profile()
    prof.enable()
    loop.run_until_complete(many())
    prof.disable()
    out = io.StringIO()
    stats = pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(18)
    return f"--- {name}: {calls} calls, by own time ---\n" + out.getvalue().split("\n\n", 1)[-1]


async def _setup(path: Path, synchronous: str
                 ) -> tuple[Any, AiosqliteRaw, dict[str, Conv]]:
    from storage_core import make_storage

    storage = make_storage(f"sqlite:///{path}?synchronous={synchronous}")
    await storage.initialize()
    raw = AiosqliteRaw(str(path), synchronous)
    await raw.open()
    convs = {}
    for name, h in (("h0", 0), ("h1000", 1_000), ("trim", 1_000), ("append", 1_000),
                    ("backend", 0), ("floor", 0), ("read", 1_000), ("same", 1_000),
                    ("h10000", 10_000), ("same-whole", 10_000), ("same-append", 0)):
        convs[name] = Conv("prof", "s", name)
        await raw.seed(convs[name], h, now_ms() - h)
    return storage, raw, convs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--cprofile", action="store_true")
    parser.add_argument("--synchronous", default="full", choices=("full", "normal", "off"),
                        help="normal takes the fsync out of every commit, so the CPU "
                             "overhead shows (ours and the floor alike)")
    args = parser.parse_args(argv)
    from storage_core import AppendRequest, ConversationKey, NewRow
    from storage_core_sqlite import sql

    with tempfile.TemporaryDirectory() as tmp:
        loop = asyncio.new_event_loop()
        storage, raw, convs = loop.run_until_complete(_setup(Path(tmp) / "prof.db",
                                                               args.synchronous))
        backend = storage.backend

        def save(conv: Conv, keep: int | None = None, fresh: bool = False) -> Op:
            counter = iter(range(10**9))

            def op() -> Awaitable[object]:
                c = Conv("prof", "fresh", f"c{next(counter)}") if fresh else conv
                role = c.take()[1]
                return storage.save_chat_message(  # type: ignore[no-any-return]
                    *c.key, {"role": role, "content": CONTENT}, max_history_size=keep)
            return op

        def append(conv: Conv) -> Op:
            def op() -> Awaitable[object]:
                role = conv.take()[1]
                return storage.append_messages(  # type: ignore[no-any-return]
                    *conv.key, [{"role": role, "content": CONTENT}])
            return op

        def backend_append(conv: Conv, history: bool) -> Op:
            key = ConversationKey(*conv.key)

            def op() -> Awaitable[object]:
                role = conv.take()[1]
                req = AppendRequest(key, [NewRow(role, CONTENT_JSON, now_ms())], True, None,
                                    history, 20)
                return backend.append(req)  # type: ignore[no-any-return]
            return op

        def floor_insert(conv: Conv) -> Op:
            def op() -> Awaitable[object]:
                index, role = conv.take()
                return raw.insert_one(conv, (index, role, CONTENT_JSON, now_ms()))
            return op

        def floor_same_work(conv: Conv, keep: int) -> Op:
            """The raw driver doing what a save with ``max_history_size`` must:
            insert, trim and read the newest ``keep`` in one transaction, in one
            call on aiosqlite's thread (the least possible for that work)."""
            from storage_core_sqlite.thread import on_thread, transaction

            def work(db: Any, row: tuple[Any, ...]) -> list[Any]:
                db.execute(_INSERT, row)
                db.execute(_TRIM, (*conv.key, row[3] - keep))
                return list(db.execute(_NEWEST, (*conv.key, keep)).fetchall())

            def op() -> Awaitable[object]:
                index, role = conv.take()
                row = (*conv.key, index, role, CONTENT_JSON, now_ms())
                return on_thread(raw._conn, transaction, lambda db: work(db, row))
            return op

        def floor_same(conv: Conv, keep: int | None, read: bool) -> Op:
            """The benchmark's same-work floor (insert + request record [+ trim]
            [+ read back], one transaction, one trip)."""
            same = SameWork(raw, record=True, read=read)
            return lambda: same.save(conv, keep)

        read = convs["read"]
        conn = raw._conn
        key = ConversationKey(*read.key)
        paths: dict[str, Op] = {
            "floor: one INSERT (autocommit)": floor_insert(convs["floor"]),
            "backend.append, no read-back": backend_append(convs["backend"], False),
            "backend.append + read newest 20": backend_append(convs["backend"], True),
            "append_messages 1, H=1,000": append(convs["append"]),
            "save_chat_message, new conversation": save(convs["h0"], fresh=True),
            "save_chat_message, H=1,000, max_history_size=50": save(convs["trim"], 50),
            "floor, same work: INSERT + trim + read 50, one txn": floor_same_work(
                convs["same"], 50),
            "save_chat_message, H=10,000 (whole read back)": save(convs["h10000"]),
            "floor, same work: INSERT + record + read whole 10,000": floor_same(
                convs["same-whole"], None, True),
            "floor, same work: INSERT + record (append_messages)": floor_same(
                convs["same-append"], None, False),
            "floor: SELECT newest 20": lambda: raw.newest(read, 20),
            "raw driver: sql.NEWEST 20": lambda: conn.execute_fetchall(sql.NEWEST,
                                                                       (*read.key, 20)),
            "backend.fetch newest 20": lambda: backend.fetch(key, 20),
            "fetch_chat newest 20": lambda: storage.fetch_chat(*read.key, max_history_size=20),
            "floor: SELECT whole 1,000": lambda: raw.whole(read),
            "raw driver: sql.NEWEST all (-1)": lambda: conn.execute_fetchall(sql.NEWEST,
                                                                             (*read.key, -1)),
            "backend.fetch whole 1,000": lambda: backend.fetch(key, None),
            "fetch_chat whole 1,000": lambda: storage.fetch_chat(*read.key),
        }
        hop, _ = loop.run_until_complete(_median(lambda: conn.execute("SELECT 1"), args.calls))
        print(f"one aiosqlite hop (execute 'SELECT 1'): median {hop * 1000:.0f} us")
        print(f"{'path':<55} {'median':>10} {'loop CPU':>10} {'hops':>5}  queued calls")
        for name, op in paths.items():
            with HopCounter() as counts:
                loop.run_until_complete(op())
            hops = sum(counts.values())
            # the whole-conversation paths take ~10-30 ms a call: fewer calls
            calls = max(10, args.calls // 20) if "10,000" in name else args.calls
            ms, cpu = loop.run_until_complete(_median(op, calls))
            detail = ", ".join(f"{k} x{v}" for k, v in counts.items())
            print(f"{name:<55} {ms * 1000:>7.0f} us {cpu * 1000:>7.0f} us {hops:>5}  {detail}")
        if args.cprofile:
            for name in ("save_chat_message, new conversation", "fetch_chat newest 20",
                         "fetch_chat whole 1,000", "save_chat_message, H=10,000 (whole read back)"):
                calls = max(10, args.calls // 20) if "10,000" in name else args.calls
                print(_profile(name, paths[name], calls, loop))
        loop.run_until_complete(storage.close())
        loop.run_until_complete(raw.close())
        loop.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
