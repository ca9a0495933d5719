"""Resident memory of one process across many saves over many conversations.

``python -m benchmarks.memory --url sqlite:////tmp/m.db --saves 100000 --conversations 10000``
prints one JSON object: RSS at checkpoints, so growth (a leak, an unbounded
cache per conversation) shows as a rising line. The runner starts it in a
fresh subprocess per URL.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from typing import Any

from ._data import CONTENT

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mib() -> float:
    """Resident set size from /proc/self/statm (Linux), in MiB."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except OSError:  # not Linux: peak RSS instead
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def measure(url: str, saves: int, conversations: int, concurrency: int,
                  checkpoints: int) -> dict[str, Any]:
    from storage_core import make_storage

    points: list[dict[str, float]] = []
    start = time.perf_counter()
    baseline = rss_mib()
    async with make_storage(url) as storage:
        every = max(1, saves // checkpoints)
        points.append({"saves": 0, "rss_mib": rss_mib(), "seconds": 0.0})
        next_save = 0
        # Each conversation gets its saves in order, so roles alternate and
        # every save is stored; ``concurrency`` conversations are in flight.
        async def worker() -> None:
            nonlocal next_save
            while next_save < saves:
                i = next_save
                next_save += 1
                conv = i % conversations
                role = "user" if (i // conversations) % 2 == 0 else "assistant"
                await storage.save_chat_message(
                    "mem", f"s{conv // 10}", f"a{conv % 10}",
                    {"role": role, "content": CONTENT}, max_history_size=50,
                )
                done = i + 1
                if done % every == 0:
                    gc.collect()
                    points.append({"saves": done, "rss_mib": rss_mib(),
                                   "seconds": time.perf_counter() - start})

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    points.sort(key=lambda p: p["saves"])
    after_first = [p["rss_mib"] for p in points if p["saves"] >= every]
    return {
        "url": url,
        "saves": saves,
        "conversations": conversations,
        "concurrency": concurrency,
        "python_baseline_rss_mib": baseline,
        "checkpoints": points,
        "growth_after_first_checkpoint_mib": (
            max(after_first) - after_first[0] if after_first else 0.0
        ),
        "seconds": time.perf_counter() - start,
        "saves_per_second": saves / (time.perf_counter() - start),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--saves", type=int, default=100_000)
    parser.add_argument("--conversations", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.url, args.saves, args.conversations, args.concurrency,
                                 args.checkpoints))
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
