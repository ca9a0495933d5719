"""What the benchmarks store: conversations and a typical message."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

__all__ = ["CONTENT", "CONTENT_JSON", "Conv", "now_ms"]

# A typical short chat turn: one text block of ~200 characters.
CONTENT: list[dict[str, str]] = [
    {"text": "The quick brown fox jumps over the lazy dog; " * 4 + "benchmark."}
]
CONTENT_JSON = json.dumps(CONTENT)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass
class Conv:
    """One conversation and what the benchmark knows of its tail."""

    user_id: str
    session_id: str
    agent_id: str
    next_index: int = 0
    last_role: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.user_id, self.session_id, self.agent_id)

    def take(self) -> tuple[int, str]:
        """The next index and an alternating role, reserved for one new message."""
        role = "assistant" if self.last_role == "user" else "user"
        index = self.next_index
        self.next_index += 1
        self.last_role = role
        return index, role

    def seeded(self, count: int) -> None:
        self.next_index = count
        self.last_role = None if count == 0 else ("user" if (count - 1) % 2 == 0 else "assistant")
