"""The in-memory backend (``memory://``): the reference every backend is held to.

It is built directly on the functions of `storage_core._rules`, so it
is the oracle of the conformance suite. ``memory://`` opens a private store;
``memory://NAME`` opens a store shared by every storage of this process that
uses the same name.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from ._backend import (
    REQUESTS_REMEMBERED,
    AppendRequest,
    AppendResult,
    Capabilities,
    ConversationKey,
    RowValues,
    StoredRow,
    TableRow,
    replayed_rows,
    reused_request,
)
from ._model import SessionInfo
from ._rules import drop_consecutive_roles, newest
from ._storage import rows_before, sessions_page
from ._urls import StorageURL
from .errors import ConfigurationError

__all__ = ["MemoryBackend", "MemoryStore"]


@dataclass
class MemoryStore:
    """The data of one in-memory database."""

    conversations: dict[ConversationKey, list[StoredRow]] = field(default_factory=dict)
    # Per conversation, request id -> what the write did: ("append", first
    # index, count) or ("pop", the popped row); oldest first, at most
    # REQUESTS_REMEMBERED.
    requests: dict[ConversationKey, dict[str, tuple[Any, ...]]] = field(default_factory=dict)


_named_stores: dict[str, MemoryStore] = {}
_named_lock = threading.Lock()


class MemoryBackend:
    """A [`Backend`][storage_core.backend.Backend] keeping rows in Python lists."""

    capabilities = Capabilities(
        shared_across_processes=False, persistent=False, exactly_once=True
    )

    def __init__(self, store: MemoryStore | None = None) -> None:
        # Every method runs without awaiting, so each call is atomic on the loop.
        self._store = store if store is not None else MemoryStore()

    @classmethod
    def from_url(cls, url: StorageURL, options: Mapping[str, Any]) -> MemoryBackend:
        if options:
            raise ConfigurationError(
                f"memory:// takes no options, got: {', '.join(sorted(options))}"
            )
        name = (url.host or "") + url.path
        if not name:
            return cls()
        with _named_lock:
            store = _named_stores.setdefault(name, MemoryStore())
        return cls(store)

    async def initialize(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _recorded(self, key: ConversationKey, request_id: str | None, replay: bool,
                  kind: str) -> tuple[Any, ...] | None:
        if not replay or request_id is None:
            return None
        record = self._store.requests.get(key, {}).get(request_id)
        if record is not None and record[0] != kind:
            raise reused_request(request_id, record[0])
        return record

    def _record(self, key: ConversationKey, request_id: str | None,
                record: tuple[Any, ...]) -> None:
        if request_id is None:
            return
        records = self._store.requests.setdefault(key, {})
        records[request_id] = record
        while len(records) > REQUESTS_REMEMBERED:
            del records[next(iter(records))]

    async def append(self, request: AppendRequest) -> AppendResult:
        key = request.key
        recorded = self._recorded(key, request.request_id, request.replay, "append")
        if recorded is not None:
            # The history as the recorded save left it: up to its last row.
            end = recorded[1] + recorded[2]
            rows = [r for r in self._store.conversations.get(key, []) if r.message_index < end]
            history = newest(rows, request.history_limit) if request.history else None
            return AppendResult(replayed_rows(request, recorded[1], recorded[2]), history)
        rows = self._store.conversations.get(key, [])
        last_role = rows[-1].role if rows else None
        batch = list(request.rows)
        if request.skip_same_role:
            batch = drop_consecutive_roles(batch, last_role)
        start = rows[-1].message_index + 1 if rows else 0
        stored = [
            StoredRow(key.agent_id, start + i, r.role, r.content, r.timestamp)
            for i, r in enumerate(batch)
        ]
        rows = newest(rows + stored, request.keep)
        if rows:
            self._store.conversations[key] = rows
        if stored:
            self._record(key, request.request_id, ("append", start, len(stored)))
        history = newest(rows, request.history_limit) if request.history else None
        return AppendResult(stored=stored, history=history)

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        return newest(self._store.conversations.get(key, []), limit)

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        recorded = self._recorded(key, request_id, replay, "pop")
        if recorded is not None:
            return cast("RowValues", recorded[1])
        rows = self._store.conversations.get(key)
        if not rows:
            return None
        row = rows.pop()
        if not rows:
            del self._store.conversations[key]
        self._record(key, request_id, ("pop", row))
        return row

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[StoredRow]:
        return [
            row
            for key, rows in self._store.conversations.items()
            if key.user_id == user_id and key.session_id == session_id
            for row in rows
        ]

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        sessions: dict[str, list[tuple[str, list[StoredRow]]]] = {}
        for key, rows in self._store.conversations.items():
            if key.user_id == user_id and rows:
                sessions.setdefault(key.session_id, []).append((key.agent_id, rows))
        return [
            SessionInfo(
                session_id=sid,
                agent_ids=tuple(sorted(agent for agent, _ in convs)),
                message_count=sum(len(rows) for _, rows in convs),
                last_timestamp=max(row.timestamp for _, rows in convs for row in rows),
            )
            for sid, convs in sessions.items()
        ]

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        return sessions_page(await self.list_sessions(user_id), limit, before)

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        return rows_before(self._store.conversations.get(key, []), limit, before_index)

    async def _delete(self, user_id: str, session_id: str | None) -> int:
        doomed = [
            key
            for key in self._store.conversations
            if key.user_id == user_id and session_id in (None, key.session_id)
        ]
        return self._drop(doomed)

    def _drop(self, keys: Sequence[ConversationKey]) -> int:
        """Delete conversations, with the records of their requests."""
        for key in keys:
            self._store.requests.pop(key, None)
        return sum(len(self._store.conversations.pop(key, [])) for key in keys)

    async def delete_session(self, user_id: str, session_id: str) -> int:
        return await self._delete(user_id, session_id)

    async def delete_conversation(self, key: ConversationKey) -> int:
        return self._drop([key])

    async def delete_user(self, user_id: str) -> int:
        return await self._delete(user_id, None)

    # -- table tools -------------------------------------------------------

    def _table(self) -> list[TableRow]:
        return sorted(
            (
                TableRow(k.user_id, k.session_id, k.agent_id, r.message_index, r.role,
                         r.content, r.timestamp)
                for k, rows in self._store.conversations.items()
                for r in rows
            ),
            key=lambda row: row.sort_key,
        )

    async def export_rows(self, after: TableRow | None, limit: int) -> Sequence[TableRow]:
        table = self._table()
        if after is not None:
            table = [row for row in table if row.sort_key > after.sort_key]
        return table[:limit]

    async def import_rows(self, rows: Sequence[TableRow]) -> int:
        inserted = 0
        for row in rows:
            key = ConversationKey(row.user_id, row.session_id, row.agent_id)
            conversation = self._store.conversations.setdefault(key, [])
            if any(r.message_index == row.message_index for r in conversation):
                continue
            conversation.append(
                StoredRow(row.agent_id, row.message_index, row.role, row.content, row.timestamp)
            )
            conversation.sort(key=lambda r: r.message_index)
            inserted += 1
        return inserted

    async def prune(self, before_timestamp: int) -> int:
        doomed = [
            key for key, rows in self._store.conversations.items()
            if rows and max(r.timestamp for r in rows) < before_timestamp
        ]
        return self._drop(doomed)

    async def describe(self) -> dict[str, object]:
        return {
            "schema_version": None,
            "indexes": [],
            "server": "in-process memory",
            "problems": [],
            "row_count": sum(len(rows) for rows in self._store.conversations.values()),
        }
