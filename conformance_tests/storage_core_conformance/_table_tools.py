"""The optional whole-table operations (``storage_core.TableTools``) behind the
CLI's export, import, copy, prune and doctor commands.

A backend that does not implement them skips these tests with that reason.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from storage_core.backend import TableRow, TableTools

from ._support import FreshIds, StorageFactory, TimedStorage, requires

__all__ = ["TableToolsTests"]

aio = pytest.mark.asyncio


@asynccontextmanager
async def _tools(factory: StorageFactory) -> AsyncIterator[TimedStorage]:
    async with factory.open(skip_consecutive_roles=False) as storage:
        if not isinstance(storage.raw.backend, TableTools):
            pytest.skip("backend implements no TableTools (export, import, prune, describe)")
        yield storage


def _rows(user: str, session: str, agent: str, indexes: range, ts: int) -> list[TableRow]:
    return [
        TableRow(user, session, agent, i, "user" if i % 2 == 0 else "assistant",
                 json.dumps([{"text": f"{agent}-{i}"}]), ts + i)
        for i in indexes
    ]


class TableToolsTests:
    """Export pages, idempotent import, prune of idle conversations, describe."""

    @aio
    @requires("read_your_writes")
    async def test_import_keeps_rows_as_they_are_and_is_idempotent(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        rows = _rows(*c, range(5), 1000)
        async with _tools(storage_factory) as s:
            assert await s._t(s.raw.import_rows(rows)) == 5
            assert await s._t(s.raw.import_rows(rows)) == 0, "a re-import must add nothing"
            stored = await s.fetch_chat(*c)
            assert [(m.index, m.timestamp, m.role) for m in stored] == [
                (r.message_index, r.timestamp, r.role) for r in rows
            ]
            after = await s.save_chat_message(*c, {"role": "user", "content": "next"})
            assert after[-1].index == 5, "a save after an import continues the indexes"

    @aio
    @requires("read_your_writes")
    async def test_trimming_counts_messages_when_indexes_have_gaps(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """A conversation imported with gaps in its indexes: every trim keeps
        the newest N messages by count, and the history returned is the rows
        kept (a trim computed from the newest index keeps fewer)."""
        c = fresh_ids.conv()
        gapped = [0, 3, 4, 10, 11, 20, 21, 22, 40]
        rows = [
            TableRow(*c, i, "user" if n % 2 == 0 else "assistant",
                     json.dumps([{"text": f"imported-{i}"}]), 1000 + n)
            for n, i in enumerate(gapped)
        ]
        async with _tools(storage_factory) as s:
            assert await s._t(s.raw.import_rows(rows)) == len(rows)

            async def indexes() -> list[int]:
                return [m.index for m in await s.fetch_chat(*c)]

            assert [m.index for m in await s.fetch_chat(*c, max_history_size=4)] == [
                20, 21, 22, 40]
            history = await s.save_chat_message(
                *c, {"role": "assistant", "content": "one"}, max_history_size=6)
            assert [m.index for m in history] == [11, 20, 21, 22, 40, 41]
            assert await indexes() == [11, 20, 21, 22, 40, 41]

            history = await s.save_chat_messages(
                *c, [{"role": "user", "content": "two"}, {"role": "assistant", "content": "3"}],
                max_history_size=5)
            assert [m.index for m in history] == [22, 40, 41, 42, 43]
            assert await indexes() == [22, 40, 41, 42, 43]

            stored = await s.append_messages(
                *c, [{"role": "user", "content": "four"}], max_history_size=3)
            assert [m.index for m in stored] == [44]
            assert await indexes() == [42, 43, 44]

    @aio
    @requires("read_your_writes")
    async def test_export_pages_cover_every_row_once_in_key_order(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user = fresh_ids("user")
        rows = [
            *_rows(user, fresh_ids("session") + "a", "agent-a", range(3), 10),
            *_rows(user, fresh_ids("session") + "a", "agent-b", range(2), 10),
            *_rows(user, fresh_ids("session") + "b", "agent-a", range(4), 10),
        ]
        async with _tools(storage_factory) as s:
            assert await s._t(s.raw.import_rows(rows)) == len(rows)
            seen = []
            async for row in s.raw.export(batch_size=2):
                if row.user_id == user:
                    seen.append(row)
            assert sorted(seen, key=lambda r: r.sort_key) == sorted(rows, key=lambda r: r.sort_key)
            assert seen == sorted(seen, key=lambda r: r.sort_key), "export is in key order"

    @aio
    @requires("read_your_writes")
    async def test_prune_deletes_whole_idle_conversations_only(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        idle = fresh_ids.conv(agent="idle")
        busy = fresh_ids.conv(agent="busy")
        async with _tools(storage_factory) as s:
            await s._t(s.raw.import_rows(_rows(*idle, range(3), 1)))  # timestamps 1..3
            await s._t(s.raw.import_rows(_rows(*busy, range(3), 2)))  # newest is 4
            deleted = await s._t(s.raw.prune(4))
            assert deleted >= 3
            assert await s.fetch_chat(*idle) == []
            assert [m.index for m in await s.fetch_chat(*busy)] == [0, 1, 2]

    @aio
    async def test_import_rejects_bad_rows_before_writing(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        from storage_core import ValidationError

        c = fresh_ids.conv()
        good = _rows(*c, range(2), 1)
        bad = TableRow(*c, 2, "user", "{not json", 3)
        async with _tools(storage_factory) as s:
            with pytest.raises(ValidationError, match="not valid JSON"):
                await s._t(s.raw.import_rows([*good, bad]))
            if s.capabilities.read_your_writes:
                assert await s.fetch_chat(*c) == []

    @aio
    async def test_describe_reports_schema_and_indexes(
        self, storage_factory: StorageFactory
    ) -> None:
        async with _tools(storage_factory) as s:
            facts = await s._t(s.raw.describe())
            assert "schema_version" in facts
            indexes = facts.get("indexes")
            assert isinstance(indexes, list)
            if facts["schema_version"] is not None:
                version = facts["schema_version"]
                assert isinstance(version, int)
                assert version >= 1
                assert "idx_conversations_lookup" in indexes
