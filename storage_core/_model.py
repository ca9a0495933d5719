"""The message types that cross the public API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


@dataclass(slots=True)
class StoredMessage:
    """A message as stored: with its conversation, position and timestamp.

    A fresh object on every call (changing it changes nothing stored); not
    frozen, because reads of long histories build one per message and a
    frozen dataclass costs three times as much to build.

    ``index`` is the message's ``message_index`` in its conversation: 0 for the
    first message ever stored there, one more for each message after it.
    """

    role: str
    content: Any
    timestamp: int
    index: int
    agent_id: str

    def to_dict(self) -> dict[str, Any]:
        """The message as a plain dict (``role``, ``content``, ``timestamp``, ...)."""
        return {
            "role": self.role,
            "content": self.content,
            "timestamp": self.timestamp,
            "index": self.index,
            "agent_id": self.agent_id,
        }


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One session of a user, as listed by ``ChatStorage.list_sessions``."""

    session_id: str
    agent_ids: tuple[str, ...]
    message_count: int
    last_timestamp: int
