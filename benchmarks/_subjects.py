"""What is measured: our ChatStorage, the raw floor, and agent-squad's SqlChatStorage.

Each subject does the same work through one small interface, so the
workloads run them side by side on one target.
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Any, Protocol

from ._data import CONTENT, CONTENT_JSON, Conv, now_ms
from ._raw import RawDriver

__all__ = ["Floor", "Original", "Ours", "SameWork", "Subject", "original_available"]


class Subject(Protocol):
    label: str  # "ours", "floor" or "original"
    detail: str

    async def save(self, conv: Conv, max_history: int | None) -> None: ...
    async def save_batch(self, conv: Conv, count: int) -> None: ...
    async def newest(self, conv: Conv, limit: int) -> int: ...
    async def newest_read(self, conv: Conv, limit: int) -> int: ...
    async def whole(self, conv: Conv) -> int: ...
    async def session(self, user_id: str, session_id: str) -> int: ...
    async def close(self) -> None: ...


class _ChatStorageCalls:
    """The calls ours and the original share (same names, same arguments)."""

    storage: Any

    async def open(self) -> None:
        await self.storage.initialize()

    async def newest(self, conv: Conv, limit: int) -> int:
        return len(await self.storage.fetch_chat(*conv.key, max_history_size=limit))

    async def newest_read(self, conv: Conv, limit: int) -> int:
        """``newest``, then every message's content read (ours decodes it then)."""
        messages = await self.storage.fetch_chat(*conv.key, max_history_size=limit)
        return sum(1 for m in messages if m.content is not None)

    async def whole(self, conv: Conv) -> int:
        return len(await self.storage.fetch_chat(*conv.key))

    async def session(self, user_id: str, session_id: str) -> int:
        return len(await self.storage.fetch_all_chats(user_id, session_id))

    async def close(self) -> None:
        await self.storage.close()


class Ours(_ChatStorageCalls):
    """``storage_core.make_storage(url)``, called as an application would."""

    label = "ours"

    def __init__(self, url: str, *, append_only: bool = False, **options: Any) -> None:
        from storage_core import make_storage

        self.storage = make_storage(url, **options)
        self.append_only = append_only
        self.detail = "append_messages" if append_only else type(self.storage.backend).__name__

    async def save(self, conv: Conv, max_history: int | None) -> None:
        _, role = conv.take()
        message = {"role": role, "content": CONTENT}
        if self.append_only:
            await self.storage.append_messages(*conv.key, [message], max_history)
        else:
            await self.storage.save_chat_message(*conv.key, message, max_history)

    async def save_batch(self, conv: Conv, count: int) -> None:
        batch = [{"role": conv.take()[1], "content": CONTENT} for _ in range(count)]
        if self.append_only:
            await self.storage.append_messages(*conv.key, batch)
        else:
            await self.storage.save_chat_messages(*conv.key, batch)



class Floor:
    """The raw driver: one INSERT, one SELECT, one executemany; no rules at all."""

    label = "floor"

    def __init__(self, raw: RawDriver) -> None:
        self.raw = raw
        self.detail = raw.name

    async def save(self, conv: Conv, max_history: int | None) -> None:
        index, role = conv.take()
        await self.raw.insert_one(conv, (index, role, CONTENT_JSON, now_ms()))

    async def save_batch(self, conv: Conv, count: int) -> None:
        ts = now_ms()
        rows = []
        for i in range(count):
            index, role = conv.take()
            rows.append((index, role, CONTENT_JSON, ts + i))
        await self.raw.insert_many(conv, rows)

    async def newest(self, conv: Conv, limit: int) -> int:
        return len(await self.raw.newest(conv, limit))

    async def newest_read(self, conv: Conv, limit: int) -> int:
        """``newest`` with every row's content decoded (``json.loads``)."""
        rows = await self.raw.newest(conv, limit)
        return sum(1 for row in rows if json.loads(row[3]) is not None)

    async def whole(self, conv: Conv) -> int:
        return await self.raw.whole(conv)

    async def session(self, user_id: str, session_id: str) -> int:
        return await self.raw.session(user_id, session_id)

    async def close(self) -> None:
        await self.raw.close()


class SameWork(Floor):
    """The raw driver doing the same work as our call in one transaction.

    A save inserts its rows, records a request id when ``record`` (what our
    writes do over a network; on a file only a caller's id is), trims to ``max_history``
    and, when ``read``, reads back what the call returns (the newest
    ``max_history``, else the whole conversation). Reads are the plain floor's.
    """

    def __init__(self, raw: RawDriver, *, record: bool, read: bool = True) -> None:
        super().__init__(raw)
        self.label = "same" if record else "same-norec"
        self.record = record
        self.read = read
        self.detail = (f"{raw.name}: insert{' + record' if record else ''}"
                       f"{' + trim + read' if read else ''}, one transaction")
        self._ids = itertools.count()
        self._prefix = os.urandom(8).hex()

    def _request_id(self) -> str | None:
        # 32 hex characters, as the core's own ids.
        return f"{self._prefix}{next(self._ids):016x}" if self.record else None

    async def save(self, conv: Conv, max_history: int | None) -> None:
        index, role = conv.take()
        await self.raw.same_work(conv, [(index, role, CONTENT_JSON, now_ms())],
                                 record=self._request_id(), keep=max_history, read=self.read)

    async def save_batch(self, conv: Conv, count: int) -> None:
        ts = now_ms()
        rows = []
        for i in range(count):
            index, role = conv.take()
            rows.append((index, role, CONTENT_JSON, ts + i))
        await self.raw.same_work(conv, rows, record=self._request_id(), keep=None,
                                 read=self.read)


def original_available() -> str | None:
    """None when agent-squad's SqlChatStorage imports, else the reason it does not."""
    try:
        from agent_squad.storage.sql_chat_storage import (  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
            SqlChatStorage,
        )
    except ImportError as exc:
        return f"agent-squad's SqlChatStorage is not importable ({exc})"
    return None


class Original(_ChatStorageCalls):
    """agent-squad's ``SqlChatStorage`` (libsql-client: ``file:``, ``http://``, ``ws://``)."""

    label = "original"
    detail = "agent_squad SqlChatStorage"

    def __init__(self, url: str) -> None:
        from agent_squad.storage.sql_chat_storage import (  # type: ignore[import-not-found,unused-ignore]
            SqlChatStorage,
        )
        from agent_squad.types import (  # type: ignore[import-not-found,unused-ignore]
            ConversationMessage,
        )

        self.storage: Any = SqlChatStorage(url)
        self._message: Any = ConversationMessage

    async def save(self, conv: Conv, max_history: int | None) -> None:
        _, role = conv.take()
        await self.storage.save_chat_message(
            *conv.key, self._message(role=role, content=CONTENT), max_history_size=max_history
        )

    async def save_batch(self, conv: Conv, count: int) -> None:
        batch = [self._message(role=conv.take()[1], content=CONTENT) for _ in range(count)]
        await self.storage.save_chat_messages(*conv.key, batch)

