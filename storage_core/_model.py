"""The message types that cross the public API."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ._rules import prefix_agent
from .errors import StorageError

__all__ = ["Message", "SessionInfo", "StoredMessage"]


@dataclass(frozen=True, slots=True)
class Message:
    """A message to store.

    ``content`` is any JSON value, normally a list of content blocks such as
    ``[{"text": "hi"}]``. ``timestamp`` is milliseconds since the epoch; when
    None the save's clock time is used.
    """

    role: str
    content: Any
    timestamp: int | None = None


decode_content: Callable[[str], Any] = json.JSONDecoder().decode
"""Decode content stored as JSON text (by storage_core or the original storage)."""

_MISSING: Any = object()  # content not decoded yet
_PREFIXED: Any = object()  # not decoded yet, and shown with the [agent_id] prefix


class StoredMessage:
    """A message as stored: with its conversation, position and timestamp.

    A fresh object on every call (changing it changes nothing stored).
    ``index`` is the message's ``message_index`` in its conversation: 0 for the
    first message ever stored there, one more for each message after it.

    Reads hand the content over as the JSON text the database returned and
    decode it on first access of [`content`][storage_core.StoredMessage.content] (then keep the
    value), so a call whose result is not looked at, such as the history a save
    returns, pays for no decoding. Equality, ``repr`` and
    [`to_dict`][storage_core.StoredMessage.to_dict] use the decoded content.
    """

    __slots__ = ("_content", "_json", "agent_id", "index", "role", "timestamp")
    __match_args__ = ("role", "content", "timestamp", "index", "agent_id")
    __hash__ = None  # type: ignore[assignment]  # mutable, like a non-frozen dataclass

    role: str
    timestamp: int
    index: int
    agent_id: str

    def __init__(
        self, role: str, content: Any, timestamp: int, index: int, agent_id: str
    ) -> None:
        self.role = role
        self._content = content
        self._json: str | None = None
        self.timestamp = timestamp
        self.index = index
        self.agent_id = agent_id

    @classmethod
    def from_json(
        cls, role: str, content_json: str, timestamp: int, index: int, agent_id: str
    ) -> StoredMessage:
        """A message whose content is the JSON text ``content_json``, decoded
        when [`content`][storage_core.StoredMessage.content] is first read."""
        message = cls(role, _MISSING, timestamp, index, agent_id)
        message._json = content_json
        return message

    @property
    def content(self) -> Any:
        """The content: any JSON value, usually a list of content blocks.

        Raises [`StorageError`][storage_core.errors.StorageError] if the stored text is
        not valid JSON (a row written by something else than storage_core).
        """
        text = self._json
        if text is not None:
            try:
                value = decode_content(text)
            except ValueError as exc:
                raise StorageError(
                    f"message {self.index} of agent {self.agent_id!r} holds content "
                    f"that is not valid JSON ({exc})"
                ) from None
            if self._content is _PREFIXED:
                value = prefix_agent(self.role, value, self.agent_id)
            self._content = value
            self._json = None
        return self._content

    @content.setter
    def content(self, value: Any) -> None:
        self._content = value
        self._json = None

    def _fields(self) -> tuple[str, Any, int, int, str]:
        return (self.role, self.content, self.timestamp, self.index, self.agent_id)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, StoredMessage)
        return self._fields() == other._fields()

    def __repr__(self) -> str:
        role, content, timestamp, index, agent_id = self._fields()
        return (
            f"StoredMessage(role={role!r}, content={content!r}, timestamp={timestamp!r}, "
            f"index={index!r}, agent_id={agent_id!r})"
        )

    def __reduce__(self) -> tuple[type[StoredMessage], tuple[str, Any, int, int, str]]:
        return (StoredMessage, self._fields())

    def to_dict(self) -> dict[str, Any]:
        """The message as a plain dict (``role``, ``content``, ``timestamp``, ...)."""
        return {
            "role": self.role,
            "content": self.content,
            "timestamp": self.timestamp,
            "index": self.index,
            "agent_id": self.agent_id,
        }


_GC_PAUSE_ROWS = 64
"""From this many rows on, `messages_from_rows` holds the cyclic garbage
collector off while it builds (see there); fewer are a small part of the
700 allocations that start a collection."""


def messages_from_rows(
    rows: Sequence[tuple[str, int, str, str, int]], *, prefix_assistant: bool = False
) -> list[StoredMessage]:
    """One [`StoredMessage`][storage_core.StoredMessage] per ``(agent_id, message_index, role,
    content_json, timestamp)`` row, content left to decode on first access.
    With ``prefix_assistant`` (the session view), an assistant message's
    content gets the ``[agent_id] `` prefix (`prefix_agent`) when it is
    decoded.

    The hot loop of every read, so it fills the slots directly rather than
    calling [`StoredMessage.from_json`][storage_core.StoredMessage.from_json] per row
    (half the cost).

    New objects that stay alive while more are built make the cyclic
    garbage collector run over them again and again, and count them towards
    a full collection of the whole heap: a stall of the event loop of 20 ms
    and more in a process holding a few hundred thousand objects
    (docs/performance.md, W6). They hold no reference cycles, so a build of
    `_GC_PAUSE_ROWS` or more runs with the collector off (if it was on).
    """
    if len(rows) >= _GC_PAUSE_ROWS and gc.isenabled():
        gc.disable()
        try:
            return _build(rows, prefix_assistant)
        finally:
            gc.enable()
    return _build(rows, prefix_assistant)


def _build(
    rows: Sequence[tuple[str, int, str, str, int]], prefix_assistant: bool
) -> list[StoredMessage]:
    new, cls, missing = object.__new__, StoredMessage, _MISSING
    assistant = _PREFIXED if prefix_assistant else _MISSING
    out: list[StoredMessage] = []
    append = out.append
    for agent_id, index, role, content_json, timestamp in rows:
        message = new(cls)
        message.role = role
        message._content = assistant if role == "assistant" else missing
        message._json = content_json
        message.timestamp = timestamp
        message.index = index
        message.agent_id = agent_id
        append(message)
    return out


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session of a user, as listed by ``ChatStorage.list_sessions``."""

    session_id: str
    agent_ids: tuple[str, ...]
    message_count: int
    last_timestamp: int
