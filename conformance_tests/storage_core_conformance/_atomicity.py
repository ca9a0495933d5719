"""Atomicity observed while it happens: readers polling during large batches
and trims, and writes cancelled at many points in the middle."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from storage_core import Capabilities, StoredMessage

from ._support import Conversation, FreshIds, StorageFactory, TimedStorage, texts

__all__ = ["AtomicityTests"]

aio = pytest.mark.asyncio

BATCHES = 10
SIZE = 40
KEEP = 30
# Loop turns to let a cancelled write run first: 0 cancels before the call
# starts, the larger ones cancel it at ever later points (or after it ended).
CANCEL_AFTER = (0, 1, 2, 3, 4, 5, 6, 8, 10, 13, 17, 21, 34, 55, 89, 144)


def _batch(n: int, size: int = SIZE) -> list[dict[str, Any]]:
    return [{"role": "user" if i % 2 == 0 else "assistant",
             "content": [{"text": f"b{n}:{i}"}]} for i in range(size)]


def _batch_of(m: StoredMessage) -> int:
    return int(texts([m])[0].split(":", 1)[0][1:])


def _whole_batches(rows: Sequence[StoredMessage], what: str) -> None:
    """``rows`` (a whole conversation, no trimming) hold only whole batches."""
    indexes = [m.index for m in rows]
    assert indexes == list(range(len(rows))), f"{what}: indexes {indexes[:8]}... have gaps"
    partial = {n: k for n, k in Counter(_batch_of(m) for m in rows).items() if k != SIZE}
    assert not partial, f"{what}: part of a batch was visible: {partial} of {SIZE} messages"


def _whole_window(rows: Sequence[StoredMessage], what: str) -> None:
    """``rows`` are the newest ``KEEP`` rows after some whole batches."""
    if not rows:
        return
    indexes = [m.index for m in rows]
    total = indexes[-1] + 1
    assert total % SIZE == 0, f"{what}: part of a batch was visible (last index {total - 1})"
    assert indexes == list(range(max(0, total - KEEP), total)), (
        f"{what}: {len(rows)} rows {indexes[0]}..{indexes[-1]}; the trimmed window is the "
        f"newest {KEEP} (an insert was visible before its trim)")


@contextlib.asynccontextmanager
async def _readers(
    storages: Sequence[TimedStorage], conv: Conversation, check: Any, what: str
) -> AsyncIterator[list[int]]:
    """Poll ``fetch_chat`` on each storage until the block ends; ``check``
    each read. Yields the list of read counts (one per storage)."""
    done = asyncio.Event()
    reads = [0] * len(storages)

    async def poll(n: int, storage: TimedStorage) -> None:
        while not done.is_set():
            check(await storage.fetch_chat(*conv), what)
            reads[n] += 1
            await asyncio.sleep(0)  # a read that never suspends must not starve the writer

    tasks = [asyncio.create_task(poll(n, s)) for n, s in enumerate(storages)]
    try:
        yield reads
    finally:
        done.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


@contextlib.asynccontextmanager
async def _storages(
    factory: StorageFactory, caps: Capabilities
) -> AsyncIterator[list[TimedStorage]]:
    """The writer's storage, and a second one on the same URL when the
    backend is shared (a reader on its own connection)."""
    async with factory.open(skip_consecutive_roles=False) as writer:
        if not caps.shared_across_processes:
            yield [writer]
            return
        async with factory.open(skip_consecutive_roles=False) as other:
            yield [writer, other]


class AtomicityTests:
    """No reader ever sees part of a batch or an insert before its trim; a
    write cancelled at any point leaves all of its batch or none."""

    @aio
    async def test_readers_never_see_part_of_a_batch(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        c = fresh_ids.conv()
        async with _storages(storage_factory, backend_capabilities) as storages:
            writer = storages[0]
            async with _readers(storages, c, _whole_batches, "a read during the batches"):
                for n in range(BATCHES):
                    await writer.append_messages(*c, _batch(n))
                    await asyncio.sleep(0)
            if backend_capabilities.read_your_writes:
                final = await writer.fetch_chat(*c)
                _whole_batches(final, "after the batches")
                assert len(final) == BATCHES * SIZE

    @aio
    async def test_readers_never_see_an_untrimmed_window(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        c = fresh_ids.conv()
        async with _storages(storage_factory, backend_capabilities) as storages:
            writer = storages[0]
            async with _readers(storages, c, _whole_window, "a read during trimming saves"):
                for n in range(BATCHES):
                    history = await writer.save_chat_messages(*c, _batch(n), KEEP)
                    _whole_window(history, "a save's returned history")
                    assert history[-1].index == (n + 1) * SIZE - 1
                    await asyncio.sleep(0)
            if backend_capabilities.read_your_writes:
                _whole_window(await writer.fetch_chat(*c), "after the saves")

    @aio
    async def test_cancelled_batch_is_all_or_nothing(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """A batch save cancelled after 0, 1, 2, ... loop turns (before it
        reaches the database, in the middle of its transaction, or after it
        committed) leaves all of it or nothing, and the storage keeps
        working. Cancelling is the failure between rows that every backend
        can be put through without a hook of its own."""
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            convs = []
            for k in CANCEL_AFTER:
                c = fresh_ids.conv(agent=f"cancel-{k}")
                convs.append(c)
                save = asyncio.create_task(
                    s.save_chat_messages(*c, _batch(k, SIZE), KEEP + 5))
                for _ in range(k):
                    await asyncio.sleep(0)
                save.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await save
                seen = await s.fetch_chat(*c)
                assert len(seen) in (0, KEEP + 5), (
                    f"cancelled after {k} loop turns: {len(seen)} of {SIZE} messages stored "
                    f"(kept {KEEP + 5}); a batch is all or nothing")
            # A write whose cancellation came too late to stop it may land
            # after the read above; whole, all the same.
            await s.append_messages(*fresh_ids.conv(agent="after"), _batch(0, 2))
            for k, c in zip(CANCEL_AFTER, convs, strict=True):
                seen = await s.fetch_chat(*c)
                assert len(seen) in (0, KEEP + 5), f"cancelled after {k} turns: {len(seen)}"
                if seen:
                    assert [m.index for m in seen] == list(range(SIZE - KEEP - 5, SIZE))
