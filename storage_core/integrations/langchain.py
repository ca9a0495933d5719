"""A LangChain chat message history that keeps its messages in storage_core.

::

    from storage_core.integrations.langchain import StorageCoreChatMessageHistory

    history = StorageCoreChatMessageHistory("conversation-1", "sqlite:///chat.db", user_id="u1")
    history.add_messages([HumanMessage("hi"), AIMessage("hello")])
    history.messages  # [HumanMessage(...), AIMessage(...)]

Each message is one stored message: its role is the message's ``type``
(``human``, ``ai``, ``tool``, ``system``, ``chat``, ``function``, or the
chunk's type), its content is ``message_to_dict(message)``, so every field
(``tool_calls``, ``tool_call_id``, ``artifact``, ``additional_kwargs``,
``response_metadata``, ``usage_metadata``, ``id``, ``name``) comes back.
The sync methods run on a private event loop thread
(``storage_core.sync``); the async ones on the caller's
loop. Install with ``pip install 'storage-core[langchain]'``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .._storage import ChatStorage
from .._validate import check_max_history_size
from ..errors import ConfigurationError, StorageError, ValidationError
from ..sync import SyncChatStorage
from ..sync import make_storage as sync_make_storage
from . import check_batch, check_ids, missing_framework, open_storage

try:
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
except ImportError as exc:  # pragma: no cover - exercised in the core-only session
    raise missing_framework("langchain-core", "langchain", exc) from exc

if TYPE_CHECKING:
    from .._model import StoredMessage

__all__ = ["StorageCoreChatMessageHistory"]


class StorageCoreChatMessageHistory(BaseChatMessageHistory):
    """LangChain's ``BaseChatMessageHistory`` on any storage_core backend.

    :param session_id: the storage's ``session_id`` for this history.
    :param url_or_storage: a storage URL (opened with
        ``skip_consecutive_roles=False``, closed by `close`), or a ready
        ``SyncChatStorage`` (every method) or ``ChatStorage`` (the async
        methods only), used as it is and not closed (make it with
        ``skip_consecutive_roles=False``: with the rule on, a message with the
        type of the one before it, such as two tool results in a row, is not
        stored).
    :param user_id: the storage's ``user_id``.
    :param agent_id: the storage's ``agent_id`` for this history's messages.
    :param max_history_size: when set, every write keeps only the newest that
        many messages (the oldest are deleted in the same transaction).
    :param options: more options of ``make_storage`` (only with a URL).
    """

    def __init__(
        self,
        session_id: str,
        url_or_storage: str | ChatStorage | SyncChatStorage,
        *,
        user_id: str = "default",
        agent_id: str = "langchain",
        max_history_size: int | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        self.max_history_size = check_max_history_size(max_history_size)
        self._sync_storage: SyncChatStorage | None
        if isinstance(url_or_storage, str):
            options.setdefault("skip_consecutive_roles", False)
            self._sync_storage = sync_make_storage(url_or_storage, **options)
            self._storage, self._owned = self._sync_storage.async_storage, True
        elif isinstance(url_or_storage, SyncChatStorage):
            self._storage, self._owned = open_storage(url_or_storage.async_storage, options)
            self._sync_storage = url_or_storage
        else:
            self._storage, self._owned = open_storage(url_or_storage, options)
            self._sync_storage = None
        try:
            check_ids(self._storage, user_id=user_id, session_id=session_id, agent_id=agent_id)
        except BaseException:
            self.close()  # the loop thread opened above
            raise
        self.session_id = session_id
        self.user_id = user_id
        self.agent_id = agent_id

    def __repr__(self) -> str:
        return (
            f"<StorageCoreChatMessageHistory {self.session_id!r} user={self.user_id!r} "
            f"agent={self.agent_id!r} on {self._storage.url!r}>"
        )

    @property
    def storage(self) -> ChatStorage:
        """The storage the messages are kept in."""
        return self._storage

    def _sync(self, name: str) -> SyncChatStorage:
        """The blocking twin of the storage, for the sync methods."""
        if self._sync_storage is None:
            # A SyncChatStorage owns (and on collection closes) what it wraps,
            # so the caller's ChatStorage is not wrapped behind their back.
            raise ConfigurationError(
                f"{name}() needs a blocking storage: this history was given a "
                "ChatStorage, which only the async methods (aget_messages, aadd_messages, "
                "aclear) can use; give it a URL or a storage_core.sync.SyncChatStorage"
            )
        return self._sync_storage

    # -- encoding ----------------------------------------------------------

    @staticmethod
    def _encode(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
        batch = check_batch(messages, "messages")
        out = []
        for i, message in enumerate(batch):
            if not isinstance(message, BaseMessage):
                raise ValidationError(
                    f"messages[{i}] must be a LangChain BaseMessage, not {type(message).__name__}"
                )
            data = message_to_dict(message)
            out.append({"role": data["type"], "content": data})
        return out

    @staticmethod
    def _decode(stored: list[StoredMessage]) -> list[BaseMessage]:
        try:
            return messages_from_dict([m.content for m in stored])
        except (ValueError, KeyError, TypeError) as exc:
            raise StorageError(
                f"a stored message is not a LangChain message ({type(exc).__name__}: {exc})"
            ) from None

    # -- sync --------------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]  # an attribute there
        """Every message, oldest first."""
        return self._decode(
            self._sync("messages").fetch_chat(self.user_id, self.session_id, self.agent_id)
        )

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append ``messages`` in one atomic batch: all are stored or none.

        Anything but a ``BaseMessage``, or a message holding something that is
        not JSON (in ``additional_kwargs``, say), is a `ValidationError` naming
        its position, and nothing of the batch is stored.
        """
        batch = self._encode(messages)
        self._sync("add_messages").append_messages(
            self.user_id, self.session_id, self.agent_id, batch, self.max_history_size
        )

    def clear(self) -> None:
        """Delete every message of the history.

        Only this history's conversation ``(user_id, session_id, agent_id)``
        is deleted: other agents sharing ``(user_id, session_id)`` keep theirs.
        """
        self._sync("clear").delete_conversation(self.user_id, self.session_id, self.agent_id)

    def close(self) -> None:
        """Close the storage (and its loop thread) if this history opened it
        from a URL; a storage given ready is the caller's to close."""
        if self._owned and self._sync_storage is not None:
            self._sync_storage.close()

    # -- async -------------------------------------------------------------

    async def aget_messages(self) -> list[BaseMessage]:
        """Every message, oldest first."""
        return self._decode(
            await self._storage.fetch_chat(self.user_id, self.session_id, self.agent_id)
        )

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """`add_messages` on the caller's event loop."""
        batch = self._encode(messages)
        await self._storage.append_messages(
            self.user_id, self.session_id, self.agent_id, batch, self.max_history_size
        )

    async def aclear(self) -> None:
        """`clear` on the caller's event loop."""
        await self._storage.delete_conversation(self.user_id, self.session_id, self.agent_id)

    async def aclose(self) -> None:
        """`close` from async code (in a worker thread, since it blocks)."""
        if self._owned and self._sync_storage is not None:
            # Close on this loop first: the async methods made it the
            # connections' home, which the wrapper's loop cannot close from.
            await self._storage.close()
            await asyncio.to_thread(self._sync_storage.close)
