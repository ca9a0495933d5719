"""Scenario 1: PostgreSQL stopped and restarted while 16 tasks append.

A private cluster (``initdb`` in a temp dir, a free port) is stopped three times
while the writers run, with ``pg_ctl stop -m fast`` (sessions ended
cleanly), ``-m immediate`` (like a crash: crash recovery on start) and
``-m fast`` again, and started again seconds later. The writers never stop and
the ``ChatStorage`` object is never recreated: once the server is back, its
calls must succeed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from faults._inproc import read_back, write_until
from faults._ledger import Figures, Ledger, RetryCounter
from faults._ops import conversations
from faults._servers import PgCluster
from storage_core import RetryPolicy, make_storage

TASKS = 16
OUTAGES = ("fast", "immediate", "fast")
DOWNTIME = 2.5
RUN_BEFORE, RUN_AFTER = 1.5, 2.5
# Generous enough to outlive an outage: a call waiting for the server succeeds.
RETRY = RetryPolicy(attempts=50, max_delay=0.5, deadline=30)


async def _scenario(cluster: PgCluster) -> Figures:
    ledger = Ledger("pg-restart")
    convs = conversations("pg", 8)
    storage = make_storage(cluster.url, skip_consecutive_roles=False, retry=RETRY)
    await storage.initialize()
    stop = asyncio.Event()
    writers = [
        asyncio.create_task(write_until(stop, storage, ledger, f"t{n}", convs))
        for n in range(TASKS)
    ]
    restarts: list[float] = []
    try:
        await asyncio.sleep(RUN_BEFORE)
        for mode in OUTAGES:
            await asyncio.to_thread(cluster.stop, mode)
            await asyncio.sleep(DOWNTIME)
            await asyncio.to_thread(cluster.start)
            restarts.append(time.time())
            await asyncio.sleep(RUN_AFTER)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 150)
    # The same object, after both outages: read everything back through it.
    stored = await read_back(storage, convs)
    await storage.close()
    figures = ledger.verify(stored)
    windows = [*restarts[1:], float("inf")]
    after = [
        sum(1 for o in ledger.ops.values()
            if o.state == "acked" and o.acked_at is not None and start < o.acked_at < end)
        for start, end in zip(restarts, windows, strict=True)
    ]
    figures.extra["acked_after_restarts"] = ",".join(map(str, after))
    return figures


def test_pg_stop_and_restart(pg_cluster: PgCluster, report: Callable[[Figures], None]) -> None:
    with RetryCounter() as retries:
        figures = asyncio.run(_scenario(pg_cluster))
    figures.extra["retried"] = retries.count
    report(figures)
    assert not figures.problems(), figures.line()
    assert "Hung" not in figures.errors, figures.line()
    # Errors caused by the outage must be TransientError (retried, or ambiguous).
    assert figures.untransient() == 0, "\n".join([figures.line(), *figures.examples])
    after = [int(n) for n in str(figures.extra["acked_after_restarts"]).split(",")]
    assert all(n > 0 for n in after), f"no acknowledged write after a restart: {after}"
