"""Scenario 3: writer processes killed with SIGKILL in the middle of batch saves.

Several processes save batches of 20 messages to one SQLite file. One
(the survivor) runs throughout; the others are killed with SIGKILL at random
moments and replaced by new ones. Afterwards ``PRAGMA integrity_check`` is
``ok``, no batch is stored in part, every acknowledged batch is stored, and
the survivor and the replacements kept writing after the kills.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from faults._inproc import read_back
from faults._ledger import Figures, Ledger
from faults._ops import conversations
from faults._procs import WriterProcess
from storage_core import make_storage

SCENARIO = "sqlite-kill"
CONVERSATIONS = 3
VICTIM_SLOTS = 3
DURATION = 10.0
KILL_EVERY = (0.2, 0.8)  # seconds between kills, at random
BATCH = "20"
START_TIMEOUT = 30.0


def _writer(url: str, name: str, workdir: Path, stop_file: Path) -> WriterProcess:
    return WriterProcess(
        url, name, workdir, "--scenario", SCENARIO, "--conversations", str(CONVERSATIONS),
        "--tasks", "2", "--parts", BATCH, "--filler", "2", "--stop", str(stop_file),
    )


def _wait_for_ack(process: WriterProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    start = len(process.lines())
    while time.monotonic() < deadline and process.alive():
        if any(line.startswith("ack ") for line in process.lines()[start:]):
            return
        time.sleep(0.05)


def _integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    finally:
        conn.close()
    return ";".join(str(r[0]) for r in rows)


def test_sigkill_writers_mid_batch(tmp_path: Path, report: Callable[[Figures], None]) -> None:
    db = tmp_path / "chat.db"
    url = f"sqlite:///{db}"  # absolute path: four slashes
    stop_file = tmp_path / "stop"
    rng = random.Random(5)
    survivor = _writer(url, "survivor", tmp_path, stop_file)
    survivor.wait_for("ready", START_TIMEOUT)
    slots = [_writer(url, f"w{n}", tmp_path, stop_file) for n in range(VICTIM_SLOTS)]
    everyone = [survivor, *slots]
    spawned = VICTIM_SLOTS
    killed: list[WriterProcess] = []
    try:
        end = time.monotonic() + DURATION
        while time.monotonic() < end:
            time.sleep(rng.uniform(*KILL_EVERY))
            slot = rng.randrange(VICTIM_SLOTS)
            victim = slots[slot]
            if victim.alive():
                victim.kill()
                killed.append(victim)
            slots[slot] = _writer(url, f"w{spawned}", tmp_path, stop_file)
            everyone.append(slots[slot])
            spawned += 1
        last_kill = max(p.killed_at or 0.0 for p in killed)
        # The survivor and the last generation carry on: wait for a write of each.
        for process in [survivor, *slots]:
            _wait_for_ack(process, START_TIMEOUT)
    finally:
        stop_file.touch()
        codes = {p.name: p.wait(60) for p in everyone if p.killed_at is None}

    ledger = Ledger(SCENARIO)
    acks = {p.name: p.feed(ledger)[0] for p in everyone}
    integrity = _integrity(db)

    async def read() -> Figures:
        async with make_storage(url, skip_consecutive_roles=False) as storage:
            return ledger.verify(await read_back(storage, conversations(SCENARIO, CONVERSATIONS)))

    figures = asyncio.run(read())
    killed_in_flight = sum(
        1 for o in ledger.ops.values()
        if o.state == "pending" and any(o.writer == p.name for p in killed)
    )
    final = [p for p in slots if p.killed_at is None]
    survivor_after = ledger.acked_after(last_kill, "survivor")
    figures.extra.update(
        processes=len(everyone), kills=len(killed), killed_in_flight=killed_in_flight,
        survivor_acked_after_last_kill=survivor_after, survivor_retried=survivor.retries(),
        last_generation_acked=",".join(str(acks[p.name]) for p in final),
        integrity_check=integrity,
    )
    report(figures)
    assert integrity == "ok", integrity
    assert not figures.problems(), figures.line()
    assert figures.failed == 0, f"errors reached a caller: {dict(figures.errors)}"
    bad_exits = {name: code for name, code in codes.items() if code != 0}
    assert not bad_exits, f"writers failed: {bad_exits}: " + " ".join(
        p.stderr_tail() for p in everyone if p.name in bad_exits
    )
    assert len(killed) >= 5, f"only {len(killed)} writers were killed"
    assert killed_in_flight > 0, "the kills never hit a batch in flight"
    assert survivor_after > 0, "the survivor wrote nothing after the last kill"
    assert all(acks[p.name] > 0 for p in final), "a new writer could not write"
