"""Deliberately broken backends the conformance suite must catch.

Each derives from the in-memory reference and breaks one rule. The module
registers the schemes ``broken-notrim``, ``broken-lostwrite``,
``broken-wrongorder``, ``broken-leaky``, ``broken-indextrim``,
``broken-racypop``, ``broken-nopop`` (not broken: a backend written
before pop existed), ``broken-pagedup``, ``broken-beforeincl`` and
``broken-nopaging`` (not broken: no paged reads) when passed to
``storage_core.register_plugin``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pickle
from collections.abc import Mapping, Sequence
from typing import Any

from storage_core import (
    AppendRequest,
    AppendResult,
    BackendRegistry,
    Capabilities,
    ConversationKey,
    MemoryBackend,
    RowValues,
    SessionInfo,
    StorageURL,
    StoredRow,
    drop_consecutive_roles,
    hookimpl,
    newest,
    replayed_rows,
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

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        rows = self._store.conversations.get(key, [])
        if not rows:
            return None
        row = rows[-1]
        await asyncio.sleep(0)  # another pop reads the same newest row here
        rows = self._store.conversations.get(key, [])
        if row in rows:
            rows.remove(row)
        return row


class ForgetfulBackend(MemoryBackend):
    """Declares exactly-once writes but records no request id: a repeated
    write is stored again, a repeated pop pops again."""

    async def append(self, request: AppendRequest) -> AppendResult:
        return await super().append(dataclasses.replace(request, request_id=None))

    async def pop(
        self, key: ConversationKey, request_id: str | None = None, replay: bool = False
    ) -> RowValues | None:
        return await super().pop(key)


class UserWideIdsBackend(MemoryBackend):
    """Keeps request ids per user instead of per conversation: the same id in
    another conversation of the user is taken for a repeat."""

    async def append(self, request: AppendRequest) -> AppendResult:
        key = request.key
        shared = ConversationKey(key.user_id, "", "")
        records = self._store.requests.setdefault(shared, {})
        if request.replay and request.request_id in records:
            _, first, count = records[request.request_id]
            return AppendResult(replayed_rows(request, first, count),
                                await self.fetch(key, request.history_limit)
                                if request.history else None)
        result = await super().append(dataclasses.replace(request, request_id=None))
        if result.stored and request.request_id is not None:
            records[request.request_id] = ("append", result.stored[0].message_index,
                                           len(result.stored))
        return result


class NoPopBackend(MemoryBackend):
    """A complete backend that implements no pop (written before it existed):
    ``pop_message`` must refuse with ConfigurationError, all else works."""

    pop = None  # type: ignore[assignment]  # hides MemoryBackend.pop from SupportsPop


class InclusiveCursorBackend(MemoryBackend):
    """Pages sessions from the cursor on, itself included (``>=`` for ``>``):
    each page repeats the last session of the page before."""

    async def list_sessions_page(
        self, user_id: str, limit: int | None, before: SessionInfo | None
    ) -> Sequence[SessionInfo]:
        def order(s: SessionInfo) -> tuple[int, str]:
            return (-s.last_timestamp, s.session_id)

        ordered = sorted(await self.list_sessions(user_id), key=order)
        if before is not None:
            ordered = [s for s in ordered if order(s) >= order(before)]
        return ordered if limit is None else ordered[:limit]


class InclusiveBeforeBackend(MemoryBackend):
    """Reads a window up to and including ``before_index`` (``<=`` for ``<``)."""

    async def fetch_before(
        self, key: ConversationKey, limit: int | None, before_index: int
    ) -> Sequence[RowValues]:
        rows = self._store.conversations.get(key, [])
        return newest([r for r in rows if r.message_index <= before_index], limit)


class NoPagingBackend(MemoryBackend):
    """A complete backend without paged reads (written before they existed):
    the core pages in Python, and every paging test passes all the same."""

    list_sessions_page = None  # type: ignore[assignment]  # hides it from SupportsPaging
    fetch_before = None  # type: ignore[assignment]


class RowByRowBackend(MemoryBackend):
    """Commits a batch one row at a time, yielding to the loop between rows
    (as a backend inserting row by row, each in its own transaction)."""

    async def append(self, request: AppendRequest) -> AppendResult:
        stored: list[StoredRow] = []
        for row in request.rows:
            one = dataclasses.replace(request, rows=[row], keep=None, history=False)
            stored += (await super().append(one)).stored
            await asyncio.sleep(0)  # a reader here sees part of the batch
        rest = await super().append(dataclasses.replace(request, rows=[]))
        return AppendResult(stored=stored, history=rest.history)


class TrimAfterBackend(MemoryBackend):
    """Inserts, yields to the loop, then trims in a step of its own."""

    async def append(self, request: AppendRequest) -> AppendResult:
        inserted = await super().append(dataclasses.replace(request, keep=None, history=False))
        await asyncio.sleep(0)  # a reader here sees the untrimmed window
        rest = await super().append(dataclasses.replace(request, rows=[]))
        return AppendResult(stored=inserted.stored, history=rest.history)


class StaleIndexBackend(MemoryBackend):
    """A batch of two or more reads the conversation's last index (and role)
    before its write step and inserts at those indexes, skipping any taken
    meanwhile (INSERT OR IGNORE): concurrent batches lose rows. A single
    message takes the correct path, so one-message tests never see it."""

    async def append(self, request: AppendRequest) -> AppendResult:
        if len(request.rows) < 2:
            return await super().append(request)
        key = request.key
        before = self._store.conversations.get(key, [])
        start = before[-1].message_index + 1 if before else 0
        last_role = before[-1].role if before else None
        await asyncio.sleep(0)  # outside the write step: another batch lands here
        batch = list(request.rows)
        if request.skip_same_role:
            batch = drop_consecutive_roles(batch, last_role)
        rows = self._store.conversations.get(key, [])
        taken = {r.message_index for r in rows}
        stored = [StoredRow(key.agent_id, start + i, r.role, r.content, r.timestamp)
                  for i, r in enumerate(batch) if start + i not in taken]
        rows = newest(sorted(rows + stored, key=lambda r: r.message_index), request.keep)
        self._store.conversations[key] = rows
        history = newest(rows, request.history_limit) if request.history else None
        return AppendResult(stored=stored, history=history)


class CaseRolesBackend(MemoryBackend):
    """Compares roles case-insensitively in the consecutive-role rule:
    ``"User"`` after ``"user"`` is dropped."""

    async def append(self, request: AppendRequest) -> AppendResult:
        if request.skip_same_role:
            rows = self._store.conversations.get(request.key, [])
            previous = rows[-1].role.casefold() if rows else None
            kept = []
            for row in request.rows:
                if row.role.casefold() != previous:
                    kept.append(row)
                previous = row.role.casefold()
            request = dataclasses.replace(request, rows=kept)
        return await super().append(request)


class PrefixKeysBackend(MemoryBackend):
    """Rebuilds the first text block of assistant messages in the session
    view as ``{"text": ...}``, dropping its other keys (the prefixing bug of
    the issue: the core prefixes, so the backend plants it in what it reads)."""

    async def fetch_session(self, user_id: str, session_id: str) -> Sequence[StoredRow]:
        out = []
        for row in await super().fetch_session(user_id, session_id):
            content = json.loads(row.content)
            if row.role == "assistant" and isinstance(content, list):
                for i, block in enumerate(content):
                    if isinstance(block, dict) and isinstance(block.get("text"), str):
                        content[i] = {"text": block["text"]}
                        break
                row = row._replace(content=json.dumps(content))
            out.append(row)
        return out


class ReencodingBackend(MemoryBackend):
    """Stores content re-encoded (``json.dumps(..., sort_keys=True)``:
    ASCII-escaped, spaced, keys sorted), which reads back as equal dicts."""

    async def append(self, request: AppendRequest) -> AppendResult:
        rows = [r._replace(content=json.dumps(json.loads(r.content), sort_keys=True))
                for r in request.rows]
        return await super().append(dataclasses.replace(request, rows=rows))


class FileSharedBackend(MemoryBackend):
    """Keeps its rows in a file that outlives it, yet declares itself
    neither persistent nor shared across processes (to skip those tests)."""

    capabilities = Capabilities(shared_across_processes=False, persistent=False)

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    async def append(self, request: AppendRequest) -> AppendResult:
        self._load()
        result = await super().append(request)
        with open(self._path + ".tmp", "wb") as f:  # noqa: ASYNC230  # a test double
            pickle.dump(self._store.conversations, f)
        os.replace(self._path + ".tmp", self._path)
        return result

    async def fetch(self, key: ConversationKey, limit: int | None) -> Sequence[StoredRow]:
        self._load()
        return await super().fetch(key, limit)

    def _load(self) -> None:
        if os.path.exists(self._path):
            with open(self._path, "rb") as f:
                self._store.conversations = pickle.load(f)


def fileshared(url: StorageURL, options: Mapping[str, Any]) -> MemoryBackend:
    return FileSharedBackend(url.path)


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
pagedup = _factory(InclusiveCursorBackend)
beforeincl = _factory(InclusiveBeforeBackend)
nopaging = _factory(NoPagingBackend)
forgetful = _factory(ForgetfulBackend)
userwideids = _factory(UserWideIdsBackend)
rowbyrow = _factory(RowByRowBackend)
trimafter = _factory(TrimAfterBackend)
staleindex = _factory(StaleIndexBackend)
caseroles = _factory(CaseRolesBackend)
prefixkeys = _factory(PrefixKeysBackend)
reencoding = _factory(ReencodingBackend)


@hookimpl
def storage_core_register_backends(registry: BackendRegistry) -> None:
    for name in ("notrim", "lostwrite", "wrongorder", "leaky", "indextrim", "racypop",
                 "nopop", "pagedup", "beforeincl", "nopaging", "forgetful", "userwideids",
                 "rowbyrow", "trimafter", "staleindex", "caseroles", "prefixkeys",
                 "reencoding", "fileshared"):
        registry.register(f"broken-{name}", f"broken_backends:{name}",
                          distribution="storage-core-conformance-selftest")
