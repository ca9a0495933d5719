"""Deliberately broken backends the conformance suite must catch.

Each derives from the in-memory reference and breaks one rule. The module
registers the schemes ``broken-notrim``, ``broken-lostwrite``,
``broken-wrongorder``, ``broken-leaky``, ``broken-indextrim``,
``broken-racypop`` and ``broken-nopop`` (not broken: a backend written
before pop existed) when passed to
``storage_core.register_plugin``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from storage_core import (
    AppendRequest,
    AppendResult,
    BackendRegistry,
    ConversationKey,
    MemoryBackend,
    RowValues,
    StorageURL,
    StoredRow,
    drop_consecutive_roles,
    hookimpl,
    newest,
)


class NoTrimBackend(MemoryBackend):
    """Returns a trimmed history but never deletes old rows."""

    async def append(self, request: AppendRequest) -> AppendResult:
        return await super().append(dataclasses.replace(request, keep=None))


class LostWriteBackend(MemoryBackend):
    """Reads the conversation, yields to the loop, then writes what it read."""

    async def append(self, request: AppendRequest) -> AppendResult:
        key = request.key
        rows = list(self._store.conversations.get(key, []))
        await asyncio.sleep(0)  # another task appends here; its rows are overwritten
        batch = list(request.rows)
        if request.skip_same_role:
            batch = drop_consecutive_roles(batch, rows[-1].role if rows else None)
        start = rows[-1].message_index + 1 if rows else 0
        stored = [StoredRow(key.agent_id, start + i, r.role, r.content, r.timestamp)
                  for i, r in enumerate(batch)]
        rows = newest(rows + stored, request.keep)
        self._store.conversations[key] = rows
        history = newest(rows, request.history_limit) if request.history else None
        return AppendResult(stored=stored, history=history)


class WrongOrderBackend(MemoryBackend):
    """Returns a conversation newest first."""

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        return list(reversed(await super().fetch(key, limit)))


class LeakyBackend(MemoryBackend):
    """Shows every user's rows of a session id in the session view."""

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[StoredRow]:
        return [row for key, rows in self._store.conversations.items()
                if key.session_id == session_id for row in rows]


class IndexTrimBackend(MemoryBackend):
    """Trims by index arithmetic (keeps indexes above the newest minus N), as
    if indexes had no gaps: an imported conversation with gaps keeps fewer."""

    async def append(self, request: AppendRequest) -> AppendResult:
        result = await super().append(dataclasses.replace(request, keep=None, history=False))
        key = request.key
        rows = self._store.conversations.get(key, [])
        if request.keep is not None and rows:
            cut = rows[-1].message_index - request.keep
            rows = [r for r in rows if r.message_index > cut]
            self._store.conversations[key] = rows
        history = newest(rows, request.history_limit) if request.history else None
        return AppendResult(stored=result.stored, history=history)


class RacyPopBackend(MemoryBackend):
    """Pops in two steps: reads the newest row, yields to the loop, then
    deletes it; concurrent pops return the same row and delete it once."""

    async def pop(self, key: ConversationKey) -> RowValues | None:
        rows = self._store.conversations.get(key, [])
        if not rows:
            return None
        row = rows[-1]
        await asyncio.sleep(0)  # another pop reads the same newest row here
        rows = self._store.conversations.get(key, [])
        if row in rows:
            rows.remove(row)
        return row


class NoPopBackend(MemoryBackend):
    """A complete backend that implements no pop (written before it existed):
    ``pop_message`` must refuse with ConfigurationError, all else works."""

    pop = None  # type: ignore[assignment]  # hides MemoryBackend.pop from SupportsPop


def _factory(cls: type[MemoryBackend]) -> Any:
    def build(url: StorageURL, options: Mapping[str, Any]) -> MemoryBackend:
        return cls()

    return build


notrim = _factory(NoTrimBackend)
lostwrite = _factory(LostWriteBackend)
wrongorder = _factory(WrongOrderBackend)
leaky = _factory(LeakyBackend)
indextrim = _factory(IndexTrimBackend)
racypop = _factory(RacyPopBackend)
nopop = _factory(NoPopBackend)


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    for name in ("notrim", "lostwrite", "wrongorder", "leaky", "indextrim", "racypop",
                 "nopop"):
        registry.register(f"broken-{name}", f"broken_backends:{name}",
                          distribution="storage-core-conformance-selftest")
