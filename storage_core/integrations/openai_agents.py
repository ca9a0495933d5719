"""A session for the OpenAI Agents SDK that keeps its items in storage_core.

::

    from agents import Agent, Runner
    from storage_core.integrations.openai_agents import StorageCoreSession

    session = StorageCoreSession("conversation-1", "sqlite:///chat.db", user_id="u1")
    result = await Runner.run(agent, "Hello", session=session)

Each input item the SDK hands over (a message, a function call, its output,
a reasoning item, ...) is one stored message: its role is the item's
``role`` when it has one, else its ``type``; its content is the item itself,
so it comes back exactly as given (as JSON: equal after ``json`` round trip).
Install with ``pip install 'storage-core[openai-agents]'``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from .._storage import ChatStorage
from ..errors import ValidationError
from . import check_batch, check_ids, missing_framework, open_storage

try:
    from agents.memory.session_settings import (
        SessionSettings,
        coerce_session_settings,
        resolve_session_limit,
    )
except ImportError as exc:  # pragma: no cover - exercised in the core-only session
    raise missing_framework("the OpenAI Agents SDK", "openai-agents", exc) from exc

if TYPE_CHECKING:
    from agents.items import TResponseInputItem

__all__ = ["StorageCoreSession"]


def _role(item: Mapping[str, Any], position: int) -> str:
    role = item.get("role")
    if isinstance(role, str):
        return role
    kind = item.get("type")
    if isinstance(kind, str):
        return kind
    raise ValidationError(
        f"items[{position}] has neither a string 'role' nor a string 'type': "
        "not an input item of the Agents SDK"
    )


class StorageCoreSession:
    """The SDK's ``Session`` protocol on any storage_core backend.

    :param session_id: the SDK session id, stored as the storage's ``session_id``.
    :param url_or_storage: a storage URL (opened with
        ``skip_consecutive_roles=False``, closed by `close`), or a ready
        `ChatStorage` used as it is (make it with ``skip_consecutive_roles=False``:
        with the rule on, an item with the role of the one before it, such as a
        second function call, is not stored).
    :param user_id: the storage's ``user_id`` for this session.
    :param agent_id: the storage's ``agent_id`` for this session's items.
    :param session_settings: the SDK's settings; its ``limit`` is the default
        of `get_items`.
    :param options: more options of ``make_storage`` (only with a URL).
    """

    session_settings: SessionSettings | None

    def __init__(
        self,
        session_id: str,
        url_or_storage: str | ChatStorage,
        *,
        user_id: str = "default",
        agent_id: str = "openai-agents",
        session_settings: SessionSettings | dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        self._storage, self._owned = open_storage(url_or_storage, options)
        check_ids(self._storage, user_id=user_id, session_id=session_id, agent_id=agent_id)
        self.session_id = session_id
        self.user_id = user_id
        self.agent_id = agent_id
        # As the SDK's own sessions: default settings (no limit) when none are given.
        self.session_settings = (
            coerce_session_settings(session_settings)
            if session_settings is not None
            else SessionSettings()
        )

    def __repr__(self) -> str:
        return (
            f"<StorageCoreSession {self.session_id!r} user={self.user_id!r} "
            f"agent={self.agent_id!r} on {self._storage.url!r}>"
        )

    @property
    def storage(self) -> ChatStorage:
        """The storage the items are kept in."""
        return self._storage

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        """The session's items, oldest first; with ``limit``, only the newest
        ``limit`` (default: ``session_settings.limit``)."""
        limit = resolve_session_limit(limit, self.session_settings)
        if limit == 0:
            return []
        messages = await self._storage.fetch_chat(
            self.user_id, self.session_id, self.agent_id, max_history_size=limit
        )
        return [m.content for m in messages]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        """Append ``items`` in one atomic batch: all are stored or none.

        An item that is not a mapping with a ``role`` or ``type``, or whose
        content is not JSON, is a `ValidationError` naming its position.
        """
        batch = check_batch(items, "items")
        messages = []
        for i, item in enumerate(batch):
            if not isinstance(item, Mapping):
                raise ValidationError(
                    f"items[{i}] must be a mapping (an input item), not {type(item).__name__}"
                )
            messages.append({"role": _role(item, i), "content": item})
        await self._storage.append_messages(
            self.user_id, self.session_id, self.agent_id, messages
        )

    async def pop_item(self) -> TResponseInputItem | None:
        """Remove and return the newest item (None if there is none), atomically:
        two concurrent pops never return the same item."""
        message = await self._storage.pop_message(self.user_id, self.session_id, self.agent_id)
        if message is None:
            return None
        item: TResponseInputItem = message.content
        return item

    async def clear_session(self) -> None:
        """Delete every item of the session.

        Only this session's conversation ``(user_id, session_id, agent_id)``
        is deleted: other agents sharing ``(user_id, session_id)`` keep theirs.
        """
        await self._storage.delete_conversation(self.user_id, self.session_id, self.agent_id)

    async def close(self) -> None:
        """Close the storage if this session opened it (from a URL)."""
        if self._owned:
            await self._storage.close()

    async def __aenter__(self) -> StorageCoreSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
