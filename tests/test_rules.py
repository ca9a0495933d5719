from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_core import ValidationError
from storage_core._rules import dedupe_within_batch, drop_consecutive_roles
from storage_core.backend import assign_timestamps, keep_count, newest, prefix_agent


@dataclass
class M:
    role: str


def roles(ms: list[M]) -> list[str]:
    return [m.role for m in ms]


def test_drop_consecutive_roles_cases() -> None:
    batch = [M("user"), M("user"), M("assistant"), M("assistant"), M("user")]
    assert roles(drop_consecutive_roles(batch, None)) == ["user", "assistant", "user"]
    assert roles(drop_consecutive_roles(batch, "user")) == ["assistant", "user"]
    assert roles(drop_consecutive_roles([M("user")], "user")) == []


@given(st.lists(st.sampled_from(["user", "assistant", "tool"])), st.sampled_from([None, "user"]))
def test_dedupe_then_first_check_equals_full_rule(batch_roles: list[str], last: str | None) -> None:
    # The core splits the rule: dedupe in Python, first-row check in the database.
    batch = [M(r) for r in batch_roles]
    split = dedupe_within_batch(batch)
    if split and split[0].role == last:
        split = split[1:]
    assert roles(split) == roles(drop_consecutive_roles(batch, last))


def test_keep_count() -> None:
    assert keep_count(None) is None
    assert keep_count(5) == 5
    assert keep_count(5, "pairs") == 4
    assert keep_count(6, "pairs") == 6
    with pytest.raises(ValidationError):
        keep_count(1, "pairs")


def test_newest() -> None:
    assert newest([1, 2, 3], 2) == [2, 3]
    assert newest([1, 2, 3], None) == [1, 2, 3]
    assert newest([1, 2, 3], 10) == [1, 2, 3]


def test_assign_timestamps_keeps_given_and_increases_auto() -> None:
    assert assign_timestamps([None, 5, None, None], 100) == [100, 5, 101, 102]


def test_prefix_agent() -> None:
    content = [{"image": "x"}, {"text": "hi"}, {"text": "more"}]
    assert prefix_agent("assistant", content, "a1") == [
        {"image": "x"}, {"text": "[a1] hi"}, {"text": "more"}
    ]
    assert content[1] == {"text": "hi"}  # not mutated
    assert prefix_agent("user", content, "a1") is content
    assert prefix_agent("assistant", "plain", "a1") == "[a1] plain"
    assert prefix_agent("assistant", {"x": 1}, "a1") == {"x": 1}
