"""A writer process: tasks that save recognisable batches and say what happened.

``python -m faults._writer URL NAME [options]``. Every line on stdout is
flushed at once, so a SIGKILL loses nothing that was printed::

    ready                       storage initialized (then waits for --go)
    try OP CONVERSATION PARTS   about to send the batch
    ack OP I0,I1,... TIME       the call returned; the indexes it reported; when
    fail OP KIND MESSAGE        an error reached the caller
    retries N                   how many times the core retried a call
    done                        every task finished (--ops reached or --stop seen)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import time

from storage_core import ChatStorage, make_storage

from ._ledger import RetryCounter, describe_error
from ._ops import Conversation, conversations, save_op


def _say(*words: object) -> None:
    sys.stdout.write(" ".join(str(w) for w in words) + "\n")
    sys.stdout.flush()


def _wait_for_file(path: str) -> None:
    while not os.path.exists(path):
        time.sleep(0.01)


def _present(path: str) -> bool:
    return os.path.exists(path)  # one stat: too quick to be worth a thread


async def _watch(path: str, stop: asyncio.Event) -> None:
    """Set ``stop`` once ``path`` exists."""
    while True:
        if _present(path):
            stop.set()
            return
        await asyncio.sleep(0.05)


async def _task(
    storage: ChatStorage,
    args: argparse.Namespace,
    n: int,
    convs: list[Conversation],
    stop: asyncio.Event,
) -> None:
    rng = random.Random(f"{args.name}-{n}")
    count = 0
    while (args.ops == 0 or count < args.ops) and not stop.is_set():
        op = f"{args.name}.t{n}.{count}"
        parts = args.parts[count % len(args.parts)]
        conv = convs[rng.randrange(len(convs))]
        history = args.history_every > 0 and count % args.history_every == 0
        count += 1
        _say("try", op, conv.label, parts)
        try:
            indexes = await save_op(storage, conv, op, parts, history=history,
                                    filler=args.filler)
        except Exception as exc:
            _say("fail", op, describe_error(exc), str(exc).replace("\n", " ")[:300])
        else:
            _say("ack", op, ",".join(map(str, indexes)), f"{time.time():.6f}")


async def _main(args: argparse.Namespace) -> None:
    convs = conversations(args.scenario, args.conversations)
    with RetryCounter() as retries:
        async with make_storage(args.url, skip_consecutive_roles=False) as storage:
            _say("ready")
            if args.go:
                await asyncio.to_thread(_wait_for_file, args.go)
            stop = asyncio.Event()
            watcher = asyncio.create_task(_watch(args.stop, stop)) if args.stop else None
            await asyncio.gather(
                *(_task(storage, args, n, convs, stop) for n in range(args.tasks))
            )
            if watcher is not None:
                watcher.cancel()
    _say("retries", retries.count)
    _say("done")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m faults._writer")
    parser.add_argument("url")
    parser.add_argument("name")
    parser.add_argument("--scenario", required=True)
    parser.add_argument("--conversations", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--ops", type=int, default=0, help="per task; 0 = until --stop exists")
    parser.add_argument("--parts", type=lambda s: [int(x) for x in s.split(",")], default=[1],
                        help="batch sizes, used in turn (e.g. 1,3)")
    parser.add_argument("--history-every", type=int, default=0,
                        help="every Nth op uses save_chat_message(s); 0 = never")
    parser.add_argument("--filler", type=int, default=1)
    parser.add_argument("--go", default="", help="wait for this file before writing")
    parser.add_argument("--stop", default="", help="stop when this file exists")
    asyncio.run(_main(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
