"""The storage rules as plain functions over lists.

Every backend must give the results these functions give; the in-memory
backend is built on them and the conformance suite uses it as its oracle.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal, Protocol, TypeVar

from .errors import ValidationError

__all__ = [
    "TrimMode",
    "assign_timestamps",
    "drop_consecutive_roles",
    "keep_count",
    "newest",
    "prefix_agent",
    "session_order",
]

TrimMode = Literal["messages", "pairs", "tool-safe"]
TRIM_MODES: tuple[TrimMode, ...] = ("messages", "pairs", "tool-safe")


class _HasRole(Protocol):
    @property
    def role(self) -> str: ...


R = TypeVar("R", bound=_HasRole)
T = TypeVar("T")


def keep_count(max_history_size: int | None, trim: TrimMode = "messages") -> int | None:
    """How many of the newest messages ``max_history_size`` keeps.

    ``"messages"`` keeps N. ``"pairs"`` keeps whole user/assistant pairs: N-1
    when N is odd, so a window of an alternating conversation never starts
    with half a pair (N=1 would keep nothing and is refused).
    ``"tool-safe"`` keeps N like ``"messages"`` (the core then hides the tool
    results a window begins with, see ``storage_core._tool_calls``).
    """
    if max_history_size is None:
        return None
    if trim == "pairs":
        if max_history_size < 2:
            raise ValidationError(
                "max_history_size must be at least 2 with trim='pairs' (1 would keep nothing)"
            )
        return max_history_size - (max_history_size % 2)
    return max_history_size


def drop_consecutive_roles(batch: Sequence[R], last_role: str | None) -> list[R]:
    """Drop each message whose role equals the role of the message before it.

    The first message is compared with ``last_role`` (the conversation's last
    stored message, None for an empty conversation); each later one with the
    message before it in ``batch``. Comparing with the last *kept* message
    gives the same result, because a message is only dropped when it has the
    role of the one it was compared with.
    """
    kept: list[R] = []
    previous = last_role
    for message in batch:
        if message.role != previous:
            kept.append(message)
        previous = message.role
    return kept


def dedupe_within_batch(batch: Sequence[R]) -> list[R]:
    """The part of `drop_consecutive_roles` that needs no stored data."""
    kept: list[R] = []
    for message in batch:
        if not kept or kept[-1].role != message.role:
            kept.append(message)
    return kept


def newest(items: Sequence[T], keep: int | None) -> list[T]:
    """The newest ``keep`` items of a conversation in stored order (all if None)."""
    if keep is None:
        return list(items)
    return list(items[-keep:]) if keep > 0 else []


def assign_timestamps(given: Sequence[int | None], now_ms: int) -> list[int]:
    """Fill in missing timestamps of one batch.

    A given timestamp is kept as is. Missing ones get the save's clock time,
    made strictly increasing within the batch: ``now_ms``, ``now_ms + 1``, ...
    """
    result: list[int] = []
    next_auto = now_ms
    for ts in given:
        if ts is None:
            result.append(next_auto)
            next_auto += 1
        else:
            result.append(ts)
    return result


def session_order(
    rows: Iterable[T], key: Callable[[T], tuple[int, str, int]]
) -> list[T]:
    """Order a session's messages by (timestamp, agent_id, message_index)."""
    return sorted(rows, key=key)


def prefix_agent(role: str, content: Any, agent_id: str) -> Any:
    """Content of a message as the session view shows it.

    The first text block of an assistant message gets an ``[agent_id] ``
    prefix; its other blocks are kept. A plain string content is prefixed
    itself. Other roles and shapes come back unchanged.
    """
    if role != "assistant":
        return content
    prefix = f"[{agent_id}] "
    if isinstance(content, str):
        return prefix + content
    if isinstance(content, list):
        for i, block in enumerate(content):
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                changed = dict(block)
                changed["text"] = prefix + block["text"]
                return [*content[:i], changed, *content[i + 1:]]
    return content
