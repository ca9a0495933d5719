"""Many tasks and many processes writing to one conversation at once."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from storage_core import StoredMessage, make_storage

from ._support import Conversation, FreshIds, StorageFactory, requires, texts

__all__ = ["ConcurrencyTests", "append_in_process"]

aio = pytest.mark.asyncio

TASKS = 16
PROCESSES = 4
PER_WRITER = 50
BATCHES = 8  # batches per task in the multi-message tests
BATCH = 3


def append_in_process(
    url: str, options: dict[str, Any], conv: tuple[str, str, str], tag: str, count: int,
    timeout: float, batch: int = 1, keep: int | None = None,
) -> list[int]:
    """Worker of the multi-process tests: ``count`` appends of ``batch``
    messages each (``tag:0``, ``tag:1``, ...), trimming to ``keep`` if given.

    Module-level so a spawned process can import it. Returns the indexes the
    appends reported.
    """
    return asyncio.run(_append_many(
        url, options, Conversation(*conv), tag, count, timeout, batch, keep))


async def _append_many(
    url: str, options: dict[str, Any], conv: Conversation, tag: str, count: int, timeout: float,
    batch: int = 1, keep: int | None = None,
) -> list[int]:
    storage = make_storage(url, **{**options, "skip_consecutive_roles": False})
    try:
        await asyncio.wait_for(storage.initialize(), timeout)
        indexes: list[int] = []
        for i in range(count):
            messages = [_numbered(tag, i * batch + j) for j in range(batch)]
            stored = await asyncio.wait_for(
                storage.append_messages(*conv, messages, keep), timeout)
            assert [m.index for m in stored] == list(
                range(stored[0].index, stored[0].index + batch)), "a batch's indexes have gaps"
            indexes += [m.index for m in stored]
        return indexes
    finally:
        await asyncio.wait_for(storage.close(), timeout)


def _numbered(tag: str, i: int) -> dict[str, Any]:
    return {"role": "user" if i % 2 == 0 else "assistant", "content": [{"text": f"{tag}:{i}"}]}


def _check_batches_whole(final: list[StoredMessage], batch: int) -> None:
    """Each batch ``tag:k*batch .. tag:k*batch+batch-1`` got consecutive indexes."""
    position = {t: m.index for t, m in zip(texts(final), final, strict=True)}
    for text, index in position.items():
        tag, n = text.rsplit(":", 1)
        first = int(n) - int(n) % batch
        start = position.get(f"{tag}:{first}")
        if start is not None:
            assert index == start + int(n) % batch, (
                f"the batch of {text} was interleaved with another write")


def _check_reported(reported: list[list[int]], total: int, what: str) -> None:
    flat = sorted(i for indexes in reported for i in indexes)
    assert flat == list(range(total)), (
        f"{what} reported {len(flat)} indexes for {total} messages, "
        f"{len(flat) - len(set(flat))} of them duplicates")


def _check_all_stored(
    final: list[StoredMessage], writers: list[str], per_writer: int
) -> None:
    total = len(writers) * per_writer
    indexes = [m.index for m in final]
    assert len(final) == total, f"{total - len(final)} of {total} messages were lost"
    assert indexes == list(range(total)), "indexes are not 0..N-1 without gaps or duplicates"
    counts = Counter(texts(final))
    duplicated = [t for t, n in counts.items() if n > 1]
    assert not duplicated, f"messages stored twice: {duplicated[:5]}"
    position = {t: m.index for t, m in zip(texts(final), final, strict=True)}
    for tag in writers:
        mine = [position[f"{tag}:{i}"] for i in range(per_writer)]
        assert mine == sorted(mine), f"writer {tag}'s own messages are out of order"


class ConcurrencyTests:
    """Nothing lost, no duplicate or missing index, whatever the concurrency."""

    @requires("read_your_writes")
    @aio
    async def test_concurrent_tasks_append(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        tags = [f"t{n}" for n in range(TASKS)]
        async with storage_factory.open(skip_consecutive_roles=False) as s:

            async def writer(tag: str) -> list[int]:
                out: list[int] = []
                for i in range(PER_WRITER):
                    if i % 2:
                        stored = await s.append_messages(*c, [_numbered(tag, i)])
                        out += [m.index for m in stored]
                    else:
                        history = await s.save_chat_message(*c, _numbered(tag, i))
                        mine = [m for m in history if texts([m]) == [f"{tag}:{i}"]]
                        assert len(mine) == 1, "a save's history lacks the message it stored"
                        out.append(mine[0].index)
                return out

            reported = await asyncio.gather(*(writer(tag) for tag in tags))
            final = await s.fetch_chat(*c)
        _check_all_stored(final, tags, PER_WRITER)
        flat = sorted(i for indexes in reported for i in indexes)
        assert flat == list(range(TASKS * PER_WRITER)), "the calls reported duplicate indexes"

    @requires("read_your_writes")
    @aio
    async def test_concurrent_role_rule_sees_latest_row(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """Concurrent saves never store two neighbours with the same role."""
        c = fresh_ids.conv()
        async with storage_factory.open() as s:

            async def writer(n: int) -> list[StoredMessage]:
                out: list[StoredMessage] = []
                for i in range(10):
                    role = "user" if (n + i) % 2 == 0 else "assistant"
                    out += await s.append_messages(*c, [{"role": role, "content": f"{n}:{i}"}])
                return out

            reported = await asyncio.gather(*(writer(n) for n in range(TASKS)))
            final = await s.fetch_chat(*c)
        roles = [m.role for m in final]
        same = [i for i in range(1, len(roles)) if roles[i] == roles[i - 1]]
        assert not same, f"neighbours with the same role stored at indexes {same[:5]}"
        assert [m.index for m in final] == list(range(len(final)))
        assert sorted((m.index, m.content) for r in reported for m in r) == [
            (m.index, m.content) for m in final], "appends reported what was not stored"

    @requires("read_your_writes")
    @aio
    async def test_concurrent_saves_with_trim(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        keep, per_task = 5, 8
        async with storage_factory.open(skip_consecutive_roles=False) as s:

            async def writer(n: int) -> None:
                for i in range(per_task):
                    history = await s.save_chat_message(*c, _numbered(f"t{n}", i), keep)
                    indexes = [m.index for m in history]
                    assert indexes == list(range(indexes[0], indexes[0] + len(indexes))), (
                        f"a returned history has gaps: {indexes}")
                    assert len(history) == min(keep, indexes[-1] + 1), (
                        f"a returned history has {len(history)} messages, expected "
                        f"{min(keep, indexes[-1] + 1)}")
                    assert f"t{n}:{i}" in texts(history), "the history lacks the saved message"

            await asyncio.gather(*(writer(n) for n in range(TASKS)))
            final = await s.fetch_chat(*c)
        total = TASKS * per_task
        assert [m.index for m in final] == list(range(total - keep, total))

    @requires("shared_across_processes", "read_your_writes")
    @aio
    async def test_concurrent_storages_on_one_url(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """Several storage objects of one process on the same database."""
        c = fresh_ids.conv()
        storages = [storage_factory.make(skip_consecutive_roles=False) for _ in range(4)]
        tags = [f"s{n}" for n in range(8)]
        try:
            await asyncio.gather(*(s.initialize() for s in storages))

            async def writer(n: int) -> None:
                s = storages[n % len(storages)]
                for i in range(25):
                    await s.append_messages(*c, [_numbered(tags[n], i)])

            await asyncio.gather(*(writer(n) for n in range(len(tags))))
            final = await storages[0].fetch_chat(*c)
        finally:
            await asyncio.gather(*(s.close() for s in storages))
        _check_all_stored(final, tags, 25)

    @requires("shared_across_processes", "read_your_writes")
    @aio
    async def test_concurrent_processes_append(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        tags = [f"p{n}" for n in range(PROCESSES)]
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        timeout = storage_factory.timeout
        with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
            futures = [
                loop.run_in_executor(
                    pool, append_in_process, storage_factory.url, storage_factory.options,
                    (c.user_id, c.session_id, c.agent_id), tag, PER_WRITER, timeout)
                for tag in tags
            ]
            reported = await asyncio.wait_for(asyncio.gather(*futures), timeout * 2)
        async with storage_factory.open() as s:
            final = await s.fetch_chat(*c)
        _check_all_stored(final, tags, PER_WRITER)
        flat = sorted(i for indexes in reported for i in indexes)
        assert flat == list(range(PROCESSES * PER_WRITER)), "processes got duplicate indexes"

    # -- multi-message batches -------------------------------------------

    @requires("read_your_writes")
    @aio
    async def test_concurrent_task_batches(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """16 tasks each storing 8 batches of 3: nothing lost, indexes
        contiguous, each batch's messages next to each other."""
        c = fresh_ids.conv()
        tags = [f"t{n}" for n in range(TASKS)]
        async with storage_factory.open(skip_consecutive_roles=False) as s:

            async def writer(tag: str) -> list[int]:
                out: list[int] = []
                for k in range(BATCHES):
                    batch = [_numbered(tag, k * BATCH + j) for j in range(BATCH)]
                    if k % 2:
                        stored = await s.append_messages(*c, batch)
                    else:
                        history = await s.save_chat_messages(*c, batch)
                        stored = [m for m in history if texts([m])[0].startswith(f"{tag}:")]
                        stored = stored[-BATCH:]
                    out += [m.index for m in stored]
                return out

            reported = await asyncio.gather(*(writer(tag) for tag in tags))
            final = await s.fetch_chat(*c)
        _check_all_stored(final, tags, BATCHES * BATCH)
        _check_batches_whole(final, BATCH)
        _check_reported(reported, TASKS * BATCHES * BATCH, "the batches")

    @requires("read_your_writes")
    @aio
    async def test_concurrent_task_batches_with_trim(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """The same with ``max_history_size=7``: every returned history is the
        newest 7, contiguous, holding the whole batch; the stored indexes
        reported cover 0..N-1 once each."""
        c = fresh_ids.conv()
        keep = 7
        async with storage_factory.open(skip_consecutive_roles=False) as s:

            async def writer(n: int) -> list[int]:
                out: list[int] = []
                for k in range(BATCHES):
                    batch = [_numbered(f"t{n}", k * BATCH + j) for j in range(BATCH)]
                    if k % 2:
                        out += [m.index for m in await s.append_messages(*c, batch, keep)]
                        continue
                    history = await s.save_chat_messages(*c, batch, keep)
                    indexes = [m.index for m in history]
                    assert indexes == list(range(indexes[-1] + 1 - len(indexes),
                                                 indexes[-1] + 1)), f"gaps: {indexes}"
                    assert len(history) == min(keep, indexes[-1] + 1), (
                        f"a returned history has {len(history)} messages")
                    mine = [m for m in history if texts([m])[0] in
                            {m["content"][0]["text"] for m in batch}]
                    assert len(mine) == BATCH, "the history lacks part of the saved batch"
                    out += [m.index for m in mine]
                return out

            reported = await asyncio.gather(*(writer(n) for n in range(TASKS)))
            final = await s.fetch_chat(*c)
        total = TASKS * BATCHES * BATCH
        _check_reported(reported, total, "the trimming batches")
        assert [m.index for m in final] == list(range(total - keep, total))

    @requires("shared_across_processes", "read_your_writes")
    @aio
    async def test_concurrent_process_batches(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """4 processes, each appending 15 batches of 3, without and then
        with trimming (to 7), to one conversation each time."""
        plain, trimmed = fresh_ids.conv(agent="plain"), fresh_ids.conv(agent="trimmed")
        tags = [f"p{n}" for n in range(PROCESSES)]
        loop = asyncio.get_running_loop()
        context = multiprocessing.get_context("spawn")
        timeout, count, keep = storage_factory.timeout, 15, 7
        with ProcessPoolExecutor(PROCESSES, mp_context=context) as pool:
            reported = {}
            for conv, trim in ((plain, None), (trimmed, keep)):
                futures = [
                    loop.run_in_executor(
                        pool, append_in_process, storage_factory.url, storage_factory.options,
                        (conv.user_id, conv.session_id, conv.agent_id), tag, count, timeout,
                        BATCH, trim)
                    for tag in tags
                ]
                reported[trim] = await asyncio.wait_for(asyncio.gather(*futures), timeout * 2)
        total = PROCESSES * count * BATCH
        async with storage_factory.open() as s:
            final = await s.fetch_chat(*plain)
            window = await s.fetch_chat(*trimmed)
        _check_all_stored(final, tags, count * BATCH)
        _check_batches_whole(final, BATCH)
        _check_reported(reported[None], total, "the processes")
        _check_reported(reported[keep], total, "the trimming processes")
        assert [m.index for m in window] == list(range(total - keep, total))
