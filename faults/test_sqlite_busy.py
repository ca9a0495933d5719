"""Scenario 4: 4 processes x 16 tasks on one SQLite file; no busy error reaches a caller.

Every process opens the fresh file at the same moment (so their
``initialize()`` calls race too), then its 16 tasks save at once: single
messages through ``save_chat_message`` and batches of 3 through
``append_messages``. With the default retry policy and busy timeout, not one
call may fail, and every message must be stored once, at contiguous indexes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

from faults._inproc import read_back
from faults._ledger import Figures, Ledger
from faults._ops import conversations
from faults._procs import WriterProcess
from storage_core import make_storage

SCENARIO = "sqlite-busy"
PROCESSES = 4
TASKS = 16
OPS_PER_TASK = 30
CONVERSATIONS = 2  # SQLite's write lock covers the whole file anyway


def test_four_processes_sixteen_tasks(
    tmp_path: Path, report: Callable[[Figures], None]
) -> None:
    db = tmp_path / "chat.db"
    url = f"sqlite:///{db}"
    go = tmp_path / "go"
    writers = [
        WriterProcess(
            url, f"p{n}", tmp_path, "--scenario", SCENARIO,
            "--conversations", str(CONVERSATIONS), "--tasks", str(TASKS),
            "--ops", str(OPS_PER_TASK), "--parts", "1,3", "--history-every", "4",
            "--go", str(go),
        )
        for n in range(PROCESSES)
    ]
    try:
        for writer in writers:
            writer.wait_for("ready", 60)
        started = time.monotonic()
        go.touch()
        codes = [writer.wait(240) for writer in writers]
        elapsed = time.monotonic() - started
    finally:
        for writer in writers:
            writer.kill()
    ledger = Ledger(SCENARIO)
    for writer in writers:
        writer.feed(ledger)

    async def read() -> Figures:
        async with make_storage(url, skip_consecutive_roles=False) as storage:
            return ledger.verify(await read_back(storage, conversations(SCENARIO, CONVERSATIONS)))

    figures = asyncio.run(read())
    busy = sum(
        1 for o in ledger.ops.values()
        if o.state == "failed" and ("busy" in o.message.lower() or "locked" in o.message.lower())
    )
    figures.extra.update(processes=PROCESSES, tasks=PROCESSES * TASKS, busy=busy,
                         retried=sum(w.retries() for w in writers), seconds=f"{elapsed:.1f}")
    report(figures)
    assert codes == [0] * PROCESSES, " ".join(w.stderr_tail() for w in writers)
    assert figures.attempted == PROCESSES * TASKS * OPS_PER_TASK
    assert busy == 0, f"{busy} busy/locked errors reached a caller"
    assert figures.failed == 0, (
        f"errors reached a caller: {dict(figures.errors)}; e.g. "
        + "; ".join(o.message for o in ledger.ops.values() if o.state == "failed")[:500]
    )
    assert not figures.problems(), figures.line()
    assert figures.acknowledged == figures.attempted
