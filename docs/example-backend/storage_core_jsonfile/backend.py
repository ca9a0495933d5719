"""Step 2: the backend, implementing storage_core's Backend protocol.

The whole database lives in memory and is written back to the file after
every change (to a temporary file, then renamed over the old one, so a crash
never leaves half a file). File I/O runs on a worker thread so the event loop
never waits for the disk. One process at a time: it declares
``shared_across_processes=False`` and the conformance suite skips, with that
reason, what needs more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

from storage_core import Capabilities, ConfigurationError, SessionInfo, StorageError
from storage_core.backend import (
    AppendRequest,
    AppendResult,
    ConversationKey,
    StorageURL,
    StoredRow,
)

Conversations = dict[tuple[str, str, str], list[StoredRow]]


def _load(path: str) -> Conversations:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except FileNotFoundError:
        return {}
    data: Conversations = {}
    for row in raw:
        key = (row["user_id"], row["session_id"], row["agent_id"])
        data.setdefault(key, []).append(
            StoredRow(row["agent_id"], row["message_index"], row["role"], row["content"],
                      row["timestamp"])
        )
    return data


def _save(path: str, data: Conversations) -> None:
    rows = [
        {"user_id": u, "session_id": s, "agent_id": a, "message_index": r.message_index,
         "role": r.role, "content": r.content, "timestamp": r.timestamp}
        for (u, s, a), conversation in data.items()
        for r in conversation
    ]
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(rows, f, ensure_ascii=False)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class JsonFileBackend:
    """A storage_core backend on one JSON file."""

    capabilities = Capabilities(shared_across_processes=False)

    def __init__(self, path: str) -> None:
        self.path = path
        self._data: Conversations = {}
        self._lock = asyncio.Lock()  # one change at a time, made and saved whole

    @classmethod
    def from_url(cls, url: StorageURL, options: Mapping[str, Any]) -> JsonFileBackend:
        """``jsonfile:///relative.json`` or ``jsonfile:////absolute.json``."""
        if options:
            raise ConfigurationError(f"jsonfile:// takes no options, got {sorted(options)}")
        if not url.path:
            raise ConfigurationError(f"{url} names no file")
        return cls(url.path)

    async def initialize(self) -> None:
        try:
            self._data = await asyncio.to_thread(_load, self.path)
        except (OSError, ValueError, KeyError) as exc:
            raise StorageError(f"cannot read {self.path!r}: {exc}") from exc

    async def close(self) -> None:
        return None

    def detach(self) -> None:
        # Optional: the event loop this backend ran on has stopped and another
        # takes over. An asyncio.Lock belongs to the loop that first waited on
        # it, so make a new one; the rows in memory stay valid.
        self._lock = asyncio.Lock()

    async def _commit(self, data: Conversations) -> None:
        # The thread cannot be stopped: if the caller is cancelled, wait for
        # it (still under the lock, so the next change does not race it), so
        # that the file and ``_data`` agree either way.
        save = asyncio.ensure_future(asyncio.to_thread(_save, self.path, data))
        try:
            await asyncio.shield(save)
        except asyncio.CancelledError:
            with contextlib.suppress(OSError):
                await save
                self._data = data
            raise
        except OSError as exc:
            raise StorageError(f"cannot write {self.path!r}: {exc}") from exc
        self._data = data  # only after the file holds it: all or nothing

    async def append(self, request: AppendRequest) -> AppendResult:
        k = request.key
        key = (k.user_id, k.session_id, k.agent_id)
        async with self._lock:
            rows = self._data.get(key, [])
            new = list(request.rows)
            # The one rule a backend applies itself, atomically with the insert.
            if request.skip_same_role and rows and new and rows[-1].role == new[0].role:
                new = new[1:]
            start = rows[-1].message_index + 1 if rows else 0
            stored = [StoredRow(k.agent_id, start + i, r.role, r.content, r.timestamp)
                      for i, r in enumerate(new)]
            rows = rows + stored
            if request.keep is not None:
                rows = rows[-request.keep:]
            await self._commit({**self._data, key: rows})
        history = None
        if request.history:
            limit = request.history_limit
            history = rows if limit is None else rows[-limit:]
        return AppendResult(stored=stored, history=history)

    async def pop(self, key: ConversationKey) -> StoredRow | None:
        # Optional (storage_core.backend.SupportsPop): behind ChatStorage.pop_message.
        # Under the lock, like a save: the newest row is read and deleted
        # as one step, so concurrent pops never return the same row.
        conv = (key.user_id, key.session_id, key.agent_id)
        async with self._lock:
            rows = self._data.get(conv, [])
            if not rows:
                return None
            data = {k: v for k, v in self._data.items() if k != conv}
            if len(rows) > 1:
                data[conv] = rows[:-1]
            await self._commit(data)
        return rows[-1]

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        rows = self._data.get((key.user_id, key.session_id, key.agent_id), [])
        return list(rows) if limit is None else rows[-limit:]

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[StoredRow]:
        return [r for (u, s, _), rows in self._data.items()
                if (u, s) == (user_id, session_id) for r in rows]

    async def list_sessions(self, user_id: str) -> Sequence[SessionInfo]:
        sessions: dict[str, list[tuple[str, list[StoredRow]]]] = {}
        for (u, s, a), rows in self._data.items():
            if u == user_id and rows:
                sessions.setdefault(s, []).append((a, rows))
        return [
            SessionInfo(s, tuple(sorted(a for a, _ in convs)),
                        sum(len(rows) for _, rows in convs),
                        max(r.timestamp for _, rows in convs for r in rows))
            for s, convs in sessions.items()
        ]

    async def _delete(self, user_id: str, session_id: str | None) -> int:
        async with self._lock:
            keep = {key: rows for key, rows in self._data.items()
                    if key[0] != user_id or session_id not in (None, key[1])}
            deleted = sum(len(rows) for key, rows in self._data.items() if key not in keep)
            await self._commit(keep)
        return deleted

    async def delete_session(self, user_id: str, session_id: str) -> int:
        return await self._delete(user_id, session_id)

    async def delete_conversation(self, key: ConversationKey) -> int:
        # Optional (storage_core.backend.SupportsDeleteConversation): behind
        # ChatStorage.delete_conversation. One agent's rows, under the lock.
        conv = (key.user_id, key.session_id, key.agent_id)
        async with self._lock:
            rows = self._data.get(conv, [])
            if rows:
                await self._commit({k: v for k, v in self._data.items() if k != conv})
        return len(rows)

    async def delete_user(self, user_id: str) -> int:
        return await self._delete(user_id, None)
