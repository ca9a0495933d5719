"""PostgreSQL at 10^7 rows: save, save with ``max_history_size=50`` and fetch the
newest 20 on a big table and on a small one, side by side in one run.

``python -m benchmarks.pg_scale --url postgresql://postgres@127.0.0.1:5432/postgres``
creates a throwaway database (dropped at the end unless ``--keep``) with two
schemas, ``big`` and ``small``, each initialized by ``make_storage``
(``--partitions N`` makes both hash-partitioned). Each is filled by ONE
server-side statement (``generate_series``): ``--users`` users (100,000) with
two sessions of 50 messages each, 10,000,000 messages, in the big one, and 100
users of the same shape, 10,000 messages, in the small one. The rows go in in
time order, interleaved across conversations as a real table fills, so one
conversation's rows lie on many heap pages. A second statement per schema fills
``storage_core_requests`` with one record per message (the records the saves
would have left, at most 100 per conversation). Then ``VACUUM (ANALYZE)``
(which also keeps autovacuum from starting mid-measurement).

The calls go through ``make_storage`` (a pool of its own per schema), in
rounds: each round makes every call once on each table, the table that goes
first alternating, so both see the same server state and noise (a plain
save is popped off again, unmeasured, so every conversation keeps its
length). ``--private-cluster 6GB --prewarm`` runs on a cluster of its own
with that ``shared_buffers``, both tables loaded into it first. It prints the
median and p95 of each call per table, their ratio (big / small, the target is
1.2x or less), and the table and index sizes; ``--explain`` then prints
``EXPLAIN (ANALYZE, BUFFERS)`` of every statement of one call of each kind
(auto_explain, the save functions' statements included). Exits 1 when a
median ratio is above 1.2x. Not part of CI.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import os
import pwd
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SESSIONS = 2  # sessions per user
MESSAGES = 50  # messages per conversation (one agent per session)
AGENT = "agent"
TARGET = 1.2
REMEMBERED = 100  # request records kept per conversation (storage_core.REQUESTS_REMEMBERED)


@dataclass
class Subject:
    """One schema: its storage, its size and the next role of each conversation."""

    name: str
    users: int
    storage: Any = None
    next_role: dict[tuple[int, int], str] = field(default_factory=dict)
    undo: tuple[str, str, str] | None = None
    times: dict[str, list[float]] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.users * SESSIONS * MESSAGES

    def role(self, user: int, session: int) -> str:
        # The fill ends each conversation on an assistant message (index 49).
        role = self.next_role.get((user, session), "user")
        self.next_role[(user, session)] = "assistant" if role == "user" else "user"
        return role


@contextlib.contextmanager
def private_cluster(shared_buffers: str) -> Iterator[str]:
    """A throwaway PostgreSQL cluster (``initdb`` in a temp dir, trust auth, a
    free port) with ``shared_buffers`` set and every other setting initdb's;
    yields its URL, and stops and removes it on exit. As root, PostgreSQL runs
    as the ``postgres`` OS user."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    bindir = Path(os.environ.get("PG_BINDIR") or (
        Path(found).parent if found else bindirs[0] if bindirs else "."))
    root = Path(tempfile.mkdtemp(prefix="storage_core_pg_scale_"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        entry = pwd.getpwnam("postgres")
        os.chown(root, entry.pw_uid, entry.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    data = root / "data"

    def run(*args: str) -> None:
        subprocess.run([*prefix, str(bindir / args[0]), *args[1:]], check=True,
                       capture_output=True, timeout=300)

    run("initdb", "-D", str(data), "-A", "trust", "-U", "postgres", "-E", "UTF8",
        "--no-locale")
    run("pg_ctl", "-D", str(data), "-l", str(root / "postgres.log"), "-w", "start", "-o",
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c shared_buffers={shared_buffers}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _user(n: int) -> str:
    return f"user-{n:06d}"


def _fill_messages(schema: str, users: int) -> str:
    """One INSERT ... SELECT over generate_series: message i of conversation c
    is row g = i * conversations + c (time order, conversations interleaved)."""
    conversations = users * SESSIONS
    return f"""
INSERT INTO "{schema}".conversations
    (user_id, session_id, agent_id, message_index, role, content, "timestamp")
SELECT 'user-' || lpad((x.c / {SESSIONS})::text, 6, '0'), 'session-' || (x.c % {SESSIONS}),
       '{AGENT}', x.i, CASE WHEN x.i % 2 = 0 THEN 'user' ELSE 'assistant' END,
       '[{{"text": "message ' || x.i || ' of conversation ' || x.c
           || ': a sentence or two, about as long as a typical chat turn is."}}]',
       1700000000000 + g
FROM generate_series(0, {conversations * MESSAGES - 1}::bigint) AS g,
     LATERAL (SELECT (g % {conversations})::integer AS c, (g / {conversations})::integer AS i) x
"""


def _fill_requests(schema: str, users: int) -> str:
    """The request records the saves of those messages would have left."""
    conversations = users * SESSIONS
    kept = min(MESSAGES, REMEMBERED)
    return f"""
INSERT INTO "{schema}".storage_core_requests
    (user_id, session_id, agent_id, seq, request_id, kind, first_index, row_count)
SELECT 'user-' || lpad((x.c / {SESSIONS})::text, 6, '0'), 'session-' || (x.c % {SESSIONS}),
       '{AGENT}', x.i + 1, md5(g::text), 'append', x.i + {MESSAGES - kept}, 1
FROM generate_series(0, {conversations * kept - 1}::bigint) AS g,
     LATERAL (SELECT (g % {conversations})::integer AS c, (g / {conversations})::integer AS i) x
"""


_SIZES = """
SELECT coalesce(sum(pg_relation_size(relid)), pg_relation_size($1::regclass))::bigint,
       coalesce(sum(pg_indexes_size(relid)), pg_indexes_size($1::regclass))::bigint
FROM pg_partition_tree($1::regclass)
"""


def _mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB" if size >= 2**20 else f"{size / 2**10:,.0f} KiB"


def _stats(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1000 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]


Call = Callable[[Subject, random.Random], Awaitable[object]]


async def _save(subject: Subject, rng: random.Random) -> object:
    # Session 0 keeps its 50 messages: `_measure` pops this one off again
    # (unmeasured), so the small table's few conversations do not grow and
    # return longer histories than the big table's.
    user = rng.randrange(subject.users)
    message = {"role": "user", "content": [{"text": "a new chat turn"}]}
    saved = await subject.storage.save_chat_message(_user(user), "session-0", AGENT, message)
    subject.undo = (_user(user), "session-0", AGENT)
    return saved


async def _save_trimmed(subject: Subject, rng: random.Random) -> object:
    user = rng.randrange(subject.users)
    message = {"role": subject.role(user, 1), "content": [{"text": "a new chat turn"}]}
    return await subject.storage.save_chat_message(
        _user(user), "session-1", AGENT, message, max_history_size=50
    )


async def _fetch(subject: Subject, rng: random.Random) -> object:
    user = rng.randrange(subject.users)
    session = f"session-{rng.randrange(SESSIONS)}"
    found = await subject.storage.fetch_chat(_user(user), session, AGENT, max_history_size=20)
    assert len(found) == 20, len(found)
    return found


CALLS: dict[str, Call] = {
    "save": _save,
    "save, max_history_size=50": _save_trimmed,
    "fetch newest 20": _fetch,
}


async def _measure(subjects: list[Subject], rounds: int, warmup: int, seed: int) -> None:
    rng = random.Random(seed)
    for n in range(warmup + rounds):
        for name, call in CALLS.items():
            order = subjects if n % 2 == 0 else subjects[::-1]
            for subject in order:
                started = time.perf_counter()
                await call(subject, rng)
                elapsed = time.perf_counter() - started
                if n >= warmup:
                    subject.times.setdefault(name, []).append(elapsed)
                if subject.undo is not None:
                    await subject.storage.pop_message(*subject.undo)
                    subject.undo = None


async def _explain(url: str, schema: str) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of every statement one call of each kind
    runs, the save functions' own statements included (auto_explain with
    nested statements, its log sent to this connection)."""
    import asyncpg

    conn = await asyncpg.connect(url)
    logged: list[str] = []
    conn.add_log_listener(lambda _conn, message: logged.append(message.message))
    try:
        await conn.execute(
            "LOAD 'auto_explain'; SET auto_explain.log_min_duration = 0; "
            "SET auto_explain.log_nested_statements = on; SET auto_explain.log_analyze = on; "
            "SET auto_explain.log_buffers = on; SET client_min_messages = log")
        for name, session, keep in (("save", "session-0", "NULL"),
                                    ("save, max_history_size=50", "session-1", "50")):
            for role in ("user", "assistant"):  # a pair, so the conversation's roles alternate
                del logged[:]
                await conn.execute(
                    f'SELECT * FROM "{schema}".storage_core_append_one($1, $2, $3, $4, '
                    "'[{\"text\": \"explained\"}]', 1800000000000, true, "
                    f"{keep}, true, {keep}, md5(random()::text), false)",
                    _user(7), session, AGENT, role)
            print(f"\n### {schema}: {name}\n")
            print("\n\n".join(logged))
        del logged[:]
        await conn.execute(
            f'SELECT agent_id, message_index, role, content, "timestamp" FROM "{schema}".'
            "conversations WHERE user_id = $1 AND session_id = $2 AND agent_id = $3 "
            "ORDER BY message_index DESC LIMIT 20", _user(8), "session-1", AGENT)
        print(f"\n### {schema}: fetch newest 20\n")
        print("\n\n".join(logged))
    finally:
        await conn.close()


async def run(args: argparse.Namespace) -> int:
    import asyncpg

    from storage_core import make_storage

    base = args.url.split("?", 1)[0]
    server, _, _ = base.rpartition("/")
    database = f"storage_core_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(base)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = f"{server}/{database}"
    subjects = [Subject("big", args.users), Subject("small", args.small_users)]
    layout = f"&partitions={args.partitions}" if args.partitions else ""
    conn = None
    try:
        conn = await asyncpg.connect(url)
        version = await conn.fetchval("SHOW server_version")
        buffers = await conn.fetchval("SHOW shared_buffers")
        print(f"# PostgreSQL {version}, shared_buffers {buffers}, database {database}"
              + (f", {args.partitions} hash partitions" if args.partitions else ""),
              flush=True)
        for subject in subjects:
            subject.storage = make_storage(f"{url}?schema={subject.name}&max_size=2{layout}")
            await subject.storage.initialize()
        for subject in subjects:
            started = time.perf_counter()
            await conn.execute(_fill_messages(subject.name, subject.users), timeout=None)
            filled = time.perf_counter() - started
            await conn.execute(_fill_requests(subject.name, subject.users), timeout=None)
            recorded = time.perf_counter() - started - filled
            await conn.execute(
                f'VACUUM (ANALYZE) "{subject.name}".conversations, '
                f'"{subject.name}".storage_core_requests', timeout=None)
            print(f"# {subject.name}: {subject.rows:,} messages in one statement in "
                  f"{filled:.1f} s, request records in {recorded:.1f} s, VACUUM (ANALYZE) in "
                  f"{time.perf_counter() - started - filled - recorded:.1f} s", flush=True)
        if args.prewarm:
            # Both tables' heaps and indexes in shared buffers, as on a server
            # sized for its working set (shared_buffers larger than the data).
            started = time.perf_counter()
            await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_prewarm")
            blocks = await conn.fetchval(
                "SELECT sum(pg_prewarm(c.oid)) FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname IN ('big', 'small') AND c.relkind IN ('r', 'i')",
                timeout=None)
            print(f"# pg_prewarm: {blocks:,} blocks in {time.perf_counter() - started:.1f} s",
                  flush=True)
        load = os.getloadavg()[0]
        started = time.perf_counter()
        await _measure(subjects, args.rounds, args.warmup, args.seed)

        big, small = subjects
        print(f"\n{args.rounds} calls of each kind per table, interleaved, in "
              f"{time.perf_counter() - started:.0f} s (load average {load:.1f} before, "
              f"{os.getloadavg()[0]:.1f} after); milliseconds, median / p95\n")
        print(f"| call | {big.rows:,} rows | {small.rows:,} rows | ratio median / p95 |")
        print("| --- | --- | --- | --- |")
        missed = []
        for name in CALLS:
            (bm, bp), (sm, sp) = _stats(big.times[name]), _stats(small.times[name])
            ratio = (bm / sm, bp / sp)
            if ratio[0] > TARGET:
                missed.append(name)
            print(f"| {name} | {bm:.2f} / {bp:.2f} | {sm:.2f} / {sp:.2f} | "
                  f"{ratio[0]:.2f}x / {ratio[1]:.2f}x |")
        print("\n| table | rows | table size | index size |")
        print("| --- | --- | --- | --- |")
        for subject in subjects:
            for table in ("conversations", "storage_core_requests"):
                qualified = f'"{subject.name}".{table}'
                rows = await conn.fetchval(f"SELECT count(*) FROM {qualified}")
                heap, indexes = await conn.fetchrow(_SIZES, qualified)
                print(f"| {subject.name}.{table} | {rows:,} | {_mib(heap)} | {_mib(indexes)} |")
        if args.explain:
            for subject in subjects:
                await _explain(url, subject.name)
        verdict = (f"median ratio above {TARGET}x: {', '.join(missed)}" if missed
                   else f"every median ratio within {TARGET}x")
        print(f"\n{verdict}")
        return 1 if missed else 0
    finally:
        for subject in subjects:
            if subject.storage is not None:
                await subject.storage.close()
        if conn is not None:
            await conn.close()
        if args.keep:
            print(f"# kept database {database}", file=sys.stderr)
        else:
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pg_scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a server URL whose user may CREATE DATABASE")
    parser.add_argument("--users", type=int, default=100_000,
                        help="users of the big table (x 100 messages; default 100,000)")
    parser.add_argument("--small-users", type=int, default=100,
                        help="users of the small table (default 100: 10,000 messages)")
    parser.add_argument("--rounds", type=int, default=3000, help="measured calls of each kind")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured rounds first")
    parser.add_argument("--partitions", type=int, default=0,
                        help="hash partitions of both tables (default: plain tables)")
    parser.add_argument("--private-cluster", metavar="SHARED_BUFFERS",
                        help="run on a private cluster (initdb) with this shared_buffers "
                             "(e.g. 6GB) instead of --url")
    parser.add_argument("--prewarm", action="store_true",
                        help="load both tables and their indexes into shared buffers first")
    parser.add_argument("--explain", action="store_true",
                        help="print EXPLAIN (ANALYZE, BUFFERS) of each call's statements")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args(argv)
    if args.private_cluster:
        with private_cluster(args.private_cluster) as args.url:
            return asyncio.run(run(args))
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
