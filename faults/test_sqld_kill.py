"""Scenario 2: sqld killed (SIGKILL) and restarted while clients append.

Two ``ChatStorage`` objects, one over HTTP and one over WebSocket, each with
8 writer tasks, write to one private sqld. sqld is killed with SIGKILL twice
and started again on the same data directory and port. Neither storage object
is recreated: once sqld is back, its calls must succeed again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from storage_core_testing import Sqld

from faults._inproc import read_back, write_until
from faults._ledger import Figures, Ledger, RetryCounter
from faults._ops import conversations
from storage_core import ChatStorage, RetryPolicy, make_storage

TASKS_PER_CLIENT = 8
KILLS = 2
DOWNTIME = 2.0
RUN_BEFORE, RUN_AFTER = 1.5, 3.0
RETRY = RetryPolicy(attempts=50, max_delay=0.5, deadline=30)
REQUEST_TIMEOUT = 5  # seconds; the backend's per-request timeout


async def _scenario(server: Sqld) -> Figures:
    ledger = Ledger("sqld-kill")
    convs = conversations("sqld", 8)
    clients: dict[str, ChatStorage] = {
        scheme: make_storage(url, skip_consecutive_roles=False, retry=RETRY,
                             timeout=REQUEST_TIMEOUT)
        for scheme, url in (("http", server.http_url), ("ws", server.ws_url))
    }
    for storage in clients.values():
        await storage.initialize()
    stop = asyncio.Event()
    writers = [
        asyncio.create_task(write_until(stop, storage, ledger, f"{scheme}{n}", convs))
        for scheme, storage in clients.items()
        for n in range(TASKS_PER_CLIENT)
    ]
    restarts: list[float] = []
    try:
        await asyncio.sleep(RUN_BEFORE)
        for _ in range(KILLS):
            await asyncio.to_thread(server.kill)
            await asyncio.sleep(DOWNTIME)
            await asyncio.to_thread(server.start)
            restarts.append(time.time())
            await asyncio.sleep(RUN_AFTER)
    finally:
        stop.set()
        await asyncio.wait_for(asyncio.gather(*writers), 150)
    # Read back through each object (each must work again), then compare.
    stored = {scheme: await read_back(storage, convs) for scheme, storage in clients.items()}
    for storage in clients.values():
        await storage.close()
    figures = ledger.verify(stored["http"])
    figures.extra["ws_http_agree"] = stored["ws"] == stored["http"]
    for scheme in clients:
        after = [
            sum(1 for o in ledger.ops.values()
                if o.state == "acked" and o.writer.startswith(scheme)
                and o.acked_at is not None and start < o.acked_at < end)
            for start, end in zip(restarts, [*restarts[1:], float("inf")], strict=True)
        ]
        figures.extra[f"{scheme}_acked_after_restarts"] = ",".join(map(str, after))
    return figures


def test_sqld_kill_and_restart(sqld: Sqld, report: Callable[[Figures], None]) -> None:
    with RetryCounter() as retries:
        figures = asyncio.run(_scenario(sqld))
    figures.extra["retried"] = retries.count
    report(figures)
    assert not figures.problems(), figures.line()
    assert figures.extra["ws_http_agree"], "http and ws clients read different rows"
    assert "Hung" not in figures.errors, figures.line()
    # Errors caused by the outage must be TransientError (retried, or ambiguous).
    assert figures.untransient() == 0, "\n".join([figures.line(), *figures.examples])
    for scheme in ("http", "ws"):
        after = [int(n) for n in str(figures.extra[f"{scheme}_acked_after_restarts"]).split(",")]
        assert all(n > 0 for n in after), (
            f"the {scheme} ChatStorage acknowledged nothing after a restart: {after}"
        )
