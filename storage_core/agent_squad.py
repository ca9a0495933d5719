"""A drop-in for agent-squad's ``SqlChatStorage``, backed by any storage_core URL.

::

    from agent_squad.orchestrator import AgentSquad
    from storage_core.agent_squad import StorageCoreChatStorage

    storage = StorageCoreChatStorage("sqlite:///chat.db")     # or "file:local.db",
    await storage.initialize()                                # "libsql://...", token,
    orchestrator = AgentSquad(storage=storage, ...)           # "postgresql://..."

`StorageCoreChatStorage` subclasses agent-squad's ``ChatStorage``, so
the orchestrator, ``SupervisorAgent`` and ``SummarizingChatStorage`` accept
it. It returns what ``SqlChatStorage`` returns (``ConversationMessage``
objects with ``role`` and ``content``) and reads and writes the same
``conversations`` table, so an existing database keeps working; what changes
are the original's bugs (racy appends, non-atomic batches, discarded
timestamps, dropped content blocks). docs/agent-squad.md lists every
difference.

This module imports agent-squad (``pip install 'storage-core[agent-squad]'``);
the rest of storage_core never does.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from ._factory import make_storage
from ._model import Message, StoredMessage
from ._storage import ChatStorage
from .errors import ConfigurationError, MissingDriverError, ValidationError

try:
    from agent_squad.storage import ChatStorage as AgentSquadChatStorage
    from agent_squad.types import ConversationMessage
except ImportError as exc:  # pragma: no cover - exercised by the core-only session
    raise MissingDriverError(
        "storage_core.agent_squad needs agent-squad (Python 3.11+): "
        f"pip install 'storage-core[agent-squad]' ({exc})",
        package="storage-core[agent-squad]",
    ) from exc

__all__ = ["SqlChatStorage", "StorageCoreChatStorage"]


# agent-squad ships no type information, so its ChatStorage is ``Any`` to mypy.
class StorageCoreChatStorage(AgentSquadChatStorage):  # type: ignore[misc]
    """agent-squad's ``ChatStorage`` on a storage_core database.

    Construct it like ``SqlChatStorage``: ``StorageCoreChatStorage(url)`` or
    ``StorageCoreChatStorage(url, auth_token)``. Any storage_core URL works
    (``sqlite:///chat.db``, ``file:local.db``, ``libsql://...``,
    ``postgresql://...``); keyword options go to
    [`storage_core.make_storage`][storage_core.make_storage] (``skip_consecutive_roles``, ``trim``,
    ``retry``, ``limits`` and backend options). An already made
    [`storage_core.ChatStorage`][storage_core.ChatStorage] may be passed instead of a URL.

    ``initialize()`` creates the schema (a call before it initializes too);
    ``close()`` releases connections. It is also an async context manager.

    Any event loop may call it, as agent-squad's ``SupervisorAgent`` does
    (``asyncio.run(storage...)`` in worker threads) and as
    ``asyncio.run(storage.initialize())`` followed by later ``asyncio.run``
    calls does: the storage_core storage underneath follows the calling loop
    (see docs/contract.md, "Event loops").
    """

    def __init__(
        self,
        url: str | ChatStorage,
        auth_token: str | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        if isinstance(url, ChatStorage):
            if auth_token is not None or options:
                raise ConfigurationError(
                    "auth_token and options are for a URL; this storage is already made"
                )
            self._storage = url
        else:
            if auth_token is not None:
                options["auth_token"] = auth_token
            self._storage = make_storage(url, **options)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._storage.url!r}>"

    @property
    def storage(self) -> ChatStorage:
        """The storage_core storage underneath: timestamps, indexes, sessions, deletes."""
        return self._storage

    # -- lifecycle (as SqlChatStorage) ----------------------------------------

    async def initialize(self) -> None:
        """Connect and create the ``conversations`` table if needed. Idempotent."""
        await self._storage.initialize()

    async def close(self) -> None:
        """Release connections. Idempotent; a later call raises ``ClosedError``."""
        await self._storage.close()

    async def __aenter__(self) -> StorageCoreChatStorage:
        await self.initialize()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # -- agent-squad's ChatStorage ---------------------------------------------

    async def save_chat_message(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_message: Any,
        max_history_size: int | None = None,
    ) -> list[ConversationMessage]:
        """Store one message; return the conversation after the save.

        Not stored when its role is the role of the conversation's last
        message. With ``max_history_size`` only the newest that many messages
        are kept. A ``TimestampedMessage`` keeps its timestamp.
        """
        message, limit = _to_core(new_message), _limit(max_history_size)
        history = await self._storage.save_chat_message(
            user_id, session_id, agent_id, message, limit
        )
        return _conversation(history)

    async def save_chat_messages(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        new_messages: Iterable[Any],
        max_history_size: int | None = None,
    ) -> list[ConversationMessage]:
        """Store a batch, all or nothing; return the conversation after the save.

        As in ``SqlChatStorage``, every message's content must be a list of
        dicts (``ValueError`` otherwise, before anything is written), and an
        empty batch returns the whole stored conversation.
        """
        if isinstance(new_messages, (str, bytes, Mapping)) or not isinstance(
            new_messages, Iterable
        ):
            raise ValidationError(
                f"new_messages must be a list of messages, not {type(new_messages).__name__}"
            )
        batch = list(new_messages)
        if not batch:
            return await self.fetch_chat(user_id, session_id, agent_id)
        for i, message in enumerate(batch):
            _check_blocks(message, f"new_messages[{i}]")
        messages, limit = [_to_core(m) for m in batch], _limit(max_history_size)
        history = await self._storage.save_chat_messages(
            user_id, session_id, agent_id, messages, limit
        )
        return _conversation(history)

    async def fetch_chat(
        self,
        user_id: str,
        session_id: str,
        agent_id: str,
        max_history_size: int | None = None,
    ) -> list[ConversationMessage]:
        """The conversation oldest first; the newest ``max_history_size`` if given
        (None or 0: all of it)."""
        limit = _limit(max_history_size)
        history = await self._storage.fetch_chat(user_id, session_id, agent_id, limit)
        return _conversation(history)

    async def fetch_all_chats(self, user_id: str, session_id: str) -> list[ConversationMessage]:
        """Every agent's messages of a session, in time order.

        The first text block of an assistant message is prefixed with
        ``[agent_id] `` (its other blocks are kept); text stored as a plain
        string comes back as ``[{"text": ...}]``.
        """
        messages = await self._storage.fetch_all_chats(user_id, session_id)
        return [ConversationMessage(role=m.role, content=_as_blocks(m.content)) for m in messages]


SqlChatStorage = StorageCoreChatStorage
"""The same class under the original's name: migrating is changing one import."""


def _limit(max_history_size: object) -> Any:
    """``SqlChatStorage`` reads ``max_history_size=0`` as no limit (``if max_history_size:``)."""
    if max_history_size is None or (type(max_history_size) is int and max_history_size == 0):
        return None
    return max_history_size  # the core rejects anything but a positive int


def _to_core(message: Any) -> Any:
    """An agent-squad message as a [`Message`][storage_core.Message] (anything else: let the core
    judge).

    A ``ParticipantRole`` becomes its string; a ``TimestampedMessage``'s
    timestamp is kept (a float of milliseconds is truncated to an int).
    """
    if isinstance(message, Mapping) or not (
        hasattr(message, "role") and hasattr(message, "content")
    ):
        return message
    role = message.role
    if isinstance(role, enum.Enum):
        role = role.value
    timestamp = getattr(message, "timestamp", None)
    if isinstance(timestamp, float) and math.isfinite(timestamp):
        timestamp = int(timestamp)
    return Message(role=role, content=message.content, timestamp=timestamp)


def _check_blocks(message: Any, where: str) -> None:
    """``SqlChatStorage.save_chat_messages``'s content check, as a ValidationError."""
    if isinstance(message, Mapping):
        content = message.get("content")
    else:
        content = getattr(message, "content", None)
    if content is None:
        raise ValidationError(f"{where}: message content cannot be None")
    if not isinstance(content, list):
        raise ValidationError(f"{where}: message content must be a list")
    if not all(isinstance(block, dict) for block in content):
        raise ValidationError(f"{where}: message content must be a list of dictionaries")


def _conversation(messages: list[StoredMessage]) -> list[ConversationMessage]:
    return [ConversationMessage(role=m.role, content=m.content) for m in messages]


def _as_blocks(content: Any) -> Any:
    return [{"text": content}] if isinstance(content, str) else content
