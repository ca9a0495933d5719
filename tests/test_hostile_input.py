"""Hostile input through every public call: each call either round-trips the
input exactly or raises ValidationError with nothing written."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import math
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from storage_core import ChatStorage, ValidationError, make_storage

URLS = ["memory://hostile"]
if importlib.util.find_spec("storage_core_sqlite") is not None:
    URLS.append("sqlite")

nasty_text = st.sampled_from(
    ["", "\x00", "a\x00b", "\ud800", "x" * 300, "'; DROP TABLE conversations; --", "👍🏽", "مرحبا",
     "😀" * 200, "😀" * 201]  # 800 bytes of UTF-8 (the limit), 804 bytes
)
good_text = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
                    min_size=1, max_size=40)
any_text = st.text(st.characters(), max_size=40)
text = st.one_of(good_text, good_text, good_text, any_text, nasty_text)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False,
                                                                      allow_infinity=False)
# One digit more than a content integer may have (built when drawn: Hypothesis
# cannot show such an int in a strategy's repr).
too_long_int = st.sampled_from([1, -1]).map(lambda sign: sign * 10**4300)
bad_scalars = st.binary(max_size=4) | too_long_int | st.sampled_from(
    [math.nan, math.inf, object(), {1, 2}]
)
valid_content: st.SearchStrategy[Any] = st.recursive(
    json_scalars | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
hostile_content: st.SearchStrategy[Any] = st.recursive(
    json_scalars | any_text | bad_scalars,
    lambda inner: st.lists(inner, max_size=4)
    | st.tuples(inner, inner)
    | st.dictionaries(any_text | st.integers(), inner, max_size=4),
    max_leaves=12,
)
content = st.one_of(valid_content, valid_content, valid_content, hostile_content)
roles = st.one_of(good_text, good_text, good_text, text | st.integers() | st.none())
messages = st.fixed_dictionaries(
    {"role": roles, "content": content},
    optional={"timestamp": st.integers(min_value=0, max_value=2**63 - 1)
              | st.integers(min_value=-5, max_value=2**64) | text},
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same JSON types all the way down (1 != 1.0 != True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


@pytest.fixture(params=URLS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/h.db" if request.param == "sqlite" else str(request.param)


async def _state(storage: ChatStorage, user: str) -> Any:
    return [(s.session_id, s.message_count) for s in await storage.list_sessions(user)]


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(user=text, session=text, agent=text, batch=st.lists(messages, max_size=4),
       size=st.none() | st.integers(1, 5) | st.integers(-2, 5) | st.booleans()
       | st.sampled_from([2**31 - 1, 2**31, 2**63]))
def test_every_call_round_trips_or_refuses(
    url: str, user: str, session: str, agent: str, batch: list[dict[str, Any]], size: Any
) -> None:
    async def scenario() -> None:
        # Unique ids: a reused database never mixes examples.
        prefix = uuid.uuid4().hex[:6]
        u = prefix + user if isinstance(user, str) and user else user
        async with make_storage(url, skip_consecutive_roles=False) as storage:
            probe = prefix + "probe"
            before = await _state(storage, probe)
            try:
                saved = await storage.save_chat_messages(u, session, agent, batch, size)
            except ValidationError as exc:
                error = exc
            else:
                error = None
            if error is not None:
                assert str(error)
                with contextlib.suppress(ValidationError):  # the user id itself may be bad
                    assert await _state(storage, u) == []
                assert await _state(storage, probe) == before
                return
            event("stored")
            stored = await storage.fetch_chat(u, session, agent)
            assert [m.index for m in stored] == [m.index for m in saved]
            tail = batch[-len(stored):] if stored else []
            for message, row in zip(tail, stored, strict=True):
                assert row.role == message["role"]
                assert same(row.content, message["content"])
                if "timestamp" in message:
                    assert row.timestamp == message["timestamp"]
            await storage.append_messages(u, session, agent, batch)
            assert len(await storage.fetch_all_chats(u, session)) == len(stored) + len(batch)
            # The single-message call, on its own agent: a shortened id, as
            # one character more could exceed the id's length or byte limit.
            other = agent[:-1] + ("1" if agent[-1:] != "1" else "2")
            for message in batch[:1]:
                single = await storage.save_chat_message(u, session, other, message)
                assert same(single[-1].content, message["content"])
            total = len(stored) + len(batch) + min(len(batch), 1)
            sessions = await storage.list_sessions(u)
            assert [(x.session_id, x.message_count) for x in sessions] == (
                [(session, total)] if total else []
            )
            assert await storage.delete_session(u, session) == total
            assert await storage.delete_user(u) == 0

    asyncio.run(scenario())
