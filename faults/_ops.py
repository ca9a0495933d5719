"""Recognisable batches: every message names its operation and its part.

Shared by the in-process writers and the writer processes
(:mod:`faults._writer`), so a batch can be found again, whole or not, after
any fault.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from storage_core import ChatStorage

__all__ = ["Conversation", "batch", "conversations", "identify", "save_op"]

FILLER = "lorem ipsum dolor sit amet " * 4


@dataclass(frozen=True)
class Conversation:
    """One conversation of a scenario; ``label`` is how the ledger names it."""

    user_id: str
    session_id: str
    agent_id: str

    @property
    def label(self) -> str:
        return f"{self.user_id}/{self.session_id}/{self.agent_id}"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.session_id, self.agent_id)


def conversations(scenario: str, count: int) -> list[Conversation]:
    """``count`` conversations of one scenario (two users, several agents)."""
    return [
        Conversation(f"user-{n % 2}", f"{scenario}-session", f"agent-{n}") for n in range(count)
    ]


def batch(op: str, parts: int, *, filler: int = 1) -> list[dict[str, Any]]:
    """The messages of operation ``op``: alternating roles, each naming its part."""
    return [
        {
            "role": "user" if j % 2 == 0 else "assistant",
            "content": [{"text": f"{op} {j + 1}/{parts} " + FILLER * filler,
                         "op": op, "part": j, "parts": parts}],
        }
        for j in range(parts)
    ]


def identify(content: Any) -> tuple[str, int] | None:
    """``(op, part)`` of a stored message's content (decoded or JSON text)."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError:
            return None
    if not isinstance(content, list) or not content or not isinstance(content[0], dict):
        return None
    block = content[0]
    op, part = block.get("op"), block.get("part")
    if isinstance(op, str) and isinstance(part, int):
        return op, part
    return None


async def save_op(
    storage: ChatStorage, conversation: Conversation, op: str, parts: int, *,
    history: bool, filler: int = 1,
) -> tuple[int, ...]:
    """Store operation ``op`` as one call; return the indexes the call reported.

    ``history``: use ``save_chat_message(s)``, which return the conversation
    (the op's messages must be its newest); otherwise ``append_messages``,
    which returns what it stored. ``-1`` marks an index the answer did not give.
    """
    messages = batch(op, parts, filler=filler)
    if history:
        if parts == 1:
            returned = await storage.save_chat_message(*conversation.key, messages[0])
        else:
            returned = await storage.save_chat_messages(*conversation.key, messages)
        returned = returned[-parts:]
    else:
        returned = await storage.append_messages(*conversation.key, messages)
    found = [(identify(m.content), m.index) for m in returned]
    if [ident for ident, _ in found] != [(op, j) for j in range(parts)]:
        return (-1,) * parts
    return tuple(index for _, index in found)
