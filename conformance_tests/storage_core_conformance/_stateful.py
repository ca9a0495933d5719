"""A Hypothesis state machine: random sequences of every call, against the
backend and the in-memory reference side by side."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from storage_core import (
    ChatStorage,
    ConfigurationError,
    Message,
    SessionInfo,
    StorageError,
    StoredMessage,
    SupportsPop,
    make_storage,
)

from ._support import AUTO_TIMESTAMP_FLOOR, StorageFactory, requires

__all__ = ["EXAMPLES_ENV", "StatefulTests", "example_count"]

T = TypeVar("T")

EXAMPLES_ENV = "STORAGE_CORE_CONFORMANCE_EXAMPLES"


def example_count() -> int:
    """Examples of the state machine: ``$STORAGE_CORE_CONFORMANCE_EXAMPLES``,
    else 200 under CI and 50 locally."""
    value = os.environ.get(EXAMPLES_ENV)
    if value:
        return int(value)
    return 200 if os.environ.get("CI") else 50


# -- strategies ------------------------------------------------------------

_text = st.text(st.characters(codec="utf-8"), max_size=8)
_block = st.one_of(
    st.builds(lambda t: {"text": t}, _text),
    st.builds(lambda t: {"toolUse": {"name": t, "input": {"n": 1}}}, _text),
    st.just({"image": {"format": "png"}}),
)
_content = st.one_of(st.lists(_block, max_size=3), _text)
_timestamp = st.one_of(
    st.integers(0, AUTO_TIMESTAMP_FLOOR - 1), st.integers(0, 50), st.integers(0, 50), st.none()
)
_role = st.sampled_from(["user", "assistant", "user", "assistant", "system"])
_size = st.one_of(st.none(), st.integers(1, 6))
_slot = st.sampled_from([0, 0, 1])  # mostly the same conversation, sometimes another


@dataclass
class _Attrs:
    role: str
    content: Any
    timestamp: int | None = None


@st.composite
def _message(draw: st.DrawFn) -> Any:
    role, content, ts = draw(_role), draw(_content), draw(_timestamp)
    shape = draw(st.sampled_from(["dict", "message", "object"]))
    if shape == "message":
        return Message(role, content, ts)
    if shape == "object":
        return _Attrs(role, content, ts)
    return {"role": role, "content": content, "timestamp": ts}


_batch = st.lists(_message(), max_size=5)
_bad_message = st.sampled_from([
    {"role": "", "content": []},
    {"role": "user", "content": {1}},
    {"role": "user", "content": float("nan")},
    {"role": "user", "content": [], "timestamp": -5},
    "not a message",
])


# -- comparing results -----------------------------------------------------

def _auto(ts: int) -> bool:
    return ts >= AUTO_TIMESTAMP_FLOOR


def _norm(m: StoredMessage) -> tuple[Any, ...]:
    return (m.agent_id, m.index, m.role, m.content, "auto" if _auto(m.timestamp) else m.timestamp)


def _same_messages(got: Sequence[StoredMessage], want: Sequence[StoredMessage], what: str) -> None:
    assert [_norm(m) for m in got] == [_norm(m) for m in want], f"{what} differs from the reference"


def _same_session_view(got: Sequence[StoredMessage], want: Sequence[StoredMessage]) -> None:
    if any(_auto(m.timestamp) for m in [*got, *want]):
        # Clock timestamps differ between the two storages; compare the rows,
        # and the backend's order on its own timestamps.
        key = [(m.timestamp, m.agent_id, m.index) for m in got]
        assert key == sorted(key), "fetch_all_chats is not ordered by (timestamp, agent, index)"
        got = sorted(got, key=lambda m: (m.agent_id, m.index))
        want = sorted(want, key=lambda m: (m.agent_id, m.index))
    _same_messages(got, want, "fetch_all_chats")


def _same_sessions(got: Sequence[SessionInfo], want: Sequence[SessionInfo]) -> None:
    def norm(x: SessionInfo) -> tuple[Any, ...]:
        last = "auto" if _auto(x.last_timestamp) else x.last_timestamp
        return (x.session_id, x.agent_ids, x.message_count, last)

    if any(_auto(x.last_timestamp) for x in [*got, *want]):
        key = [(-x.last_timestamp, x.session_id) for x in got]
        assert key == sorted(key), "list_sessions is not ordered newest first"
        got = sorted(got, key=lambda x: x.session_id)
        want = sorted(want, key=lambda x: x.session_id)
    assert [norm(x) for x in got] == [norm(x) for x in want], "list_sessions differs"


@dataclass(frozen=True)
class MachineConfig:
    url: str
    options: dict[str, Any]
    timeout: float


class ConformanceMachine(RuleBasedStateMachine):
    """Every call on the backend and on ``memory://``; results must agree."""

    config: ClassVar[MachineConfig]

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.prefix = uuid.uuid4().hex[:12]
        self.backend: ChatStorage | None = None
        self.reference: ChatStorage | None = None

    def _id(self, kind: str, slot: int) -> str:
        return f"{kind}{slot}-{self.prefix}"

    def _conv(self, user: int, session: int, agent: int) -> tuple[str, str, str]:
        return self._id("u", user), self._id("s", session), self._id("a", agent)

    def _run(self, call: Awaitable[T]) -> T:
        return self.loop.run_until_complete(asyncio.wait_for(call, self.config.timeout))

    def _both(self, call: Callable[[ChatStorage], Awaitable[T]]) -> tuple[T, T] | None:
        """Run ``call`` on both; None when both raised the same kind of error."""
        assert self.backend is not None
        assert self.reference is not None
        try:
            want = self._run(call(self.reference))
        except StorageError as exc:
            with pytest.raises(type(exc)):
                self._run(call(self.backend))
            return None
        return self._run(call(self.backend)), want

    def _check_conversation(self, conv: tuple[str, str, str]) -> None:
        """After a write: the whole conversation, as stored, is the reference's."""
        out = self._both(lambda s: s.fetch_chat(*conv))
        assert out is not None
        _same_messages(*out, "fetch_chat after the write")

    @initialize(skip=st.booleans(), trim=st.sampled_from(["messages", "pairs"]))
    def open_storages(self, skip: bool, trim: str) -> None:
        options: dict[str, Any] = {"skip_consecutive_roles": skip, "trim": trim}
        self.reference = make_storage("memory://", **options)
        self.backend = make_storage(self.config.url, **{**self.config.options, **options})
        self._run(self.backend.initialize())

    @rule(user=_slot, session=_slot, agent=_slot, message=_message(), size=_size)
    def save_chat_message(
        self, user: int, session: int, agent: int, message: Any, size: int | None
    ) -> None:
        conv = self._conv(user, session, agent)
        out = self._both(lambda s: s.save_chat_message(*conv, message, size))
        if out is not None:
            _same_messages(*out, "save_chat_message")
        self._check_conversation(conv)

    @rule(user=_slot, session=_slot, agent=_slot, batch=_batch, size=_size)
    def save_chat_messages(
        self, user: int, session: int, agent: int, batch: list[Any], size: int | None
    ) -> None:
        conv = self._conv(user, session, agent)
        out = self._both(lambda s: s.save_chat_messages(*conv, batch, size))
        if out is not None:
            _same_messages(*out, "save_chat_messages")
        self._check_conversation(conv)

    @rule(user=_slot, session=_slot, agent=_slot, batch=_batch, size=_size)
    def append_messages(
        self, user: int, session: int, agent: int, batch: list[Any], size: int | None
    ) -> None:
        conv = self._conv(user, session, agent)
        out = self._both(lambda s: s.append_messages(*conv, batch, size))
        if out is not None:
            _same_messages(*out, "append_messages")
        self._check_conversation(conv)

    @rule(user=_slot, session=_slot, agent=_slot, batch=_batch, bad=_bad_message,
          where=st.integers(0, 5))
    def save_bad_batch(
        self, user: int, session: int, agent: int, batch: list[Any], bad: Any, where: int
    ) -> None:
        conv = self._conv(user, session, agent)
        batch = [*batch[:where], bad, *batch[where:]]
        assert self._both(lambda s: s.save_chat_messages(*conv, batch)) is None
        self._check_conversation(conv)

    @rule(user=_slot, session=_slot, agent=_slot)
    def pop_message(self, user: int, session: int, agent: int) -> None:
        conv = self._conv(user, session, agent)
        assert self.backend is not None
        if not isinstance(self.backend.backend, SupportsPop):
            with pytest.raises(ConfigurationError):
                self._run(self.backend.pop_message(*conv))
            return
        out = self._both(lambda s: s.pop_message(*conv))
        assert out is not None
        got, want = out
        _same_messages([m for m in [got] if m is not None], [m for m in [want] if m is not None],
                       "pop_message")
        self._check_conversation(conv)

    @rule(user=_slot, session=_slot, agent=_slot, size=_size)
    def fetch_chat(self, user: int, session: int, agent: int, size: int | None) -> None:
        conv = self._conv(user, session, agent)
        out = self._both(lambda s: s.fetch_chat(*conv, size))
        if out is not None:
            _same_messages(*out, "fetch_chat")

    @rule(user=_slot, session=_slot)
    def fetch_all_chats(self, user: int, session: int) -> None:
        u, s_id = self._id("u", user), self._id("s", session)
        out = self._both(lambda s: s.fetch_all_chats(u, s_id))
        assert out is not None
        _same_session_view(*out)

    @rule(user=_slot)
    def list_sessions(self, user: int) -> None:
        u = self._id("u", user)
        out = self._both(lambda s: s.list_sessions(u))
        assert out is not None
        _same_sessions(*out)

    @rule(user=_slot, session=_slot)
    def delete_session(self, user: int, session: int) -> None:
        u, s_id = self._id("u", user), self._id("s", session)
        out = self._both(lambda s: s.delete_session(u, s_id))
        assert out is not None
        assert out[0] == out[1], "delete_session deleted another number of rows"

    @rule(user=_slot)
    def delete_user(self, user: int) -> None:
        u = self._id("u", user)
        out = self._both(lambda s: s.delete_user(u))
        assert out is not None
        assert out[0] == out[1], "delete_user deleted another number of rows"

    @rule()
    def compare_everything(self) -> None:
        """Every user's sessions and session views, as stored."""
        for user in (0, 1):
            self.list_sessions(user)
            for session in (0, 1):
                self.fetch_all_chats(user, session)

    def teardown(self) -> None:
        try:
            for storage in (self.backend, self.reference):
                if storage is not None:
                    self._run(storage.close())
        finally:
            self.loop.close()


class StatefulTests:
    """The model-based test."""

    @requires("read_your_writes")
    def test_random_calls_match_reference(self, storage_factory: StorageFactory) -> None:
        """Random sequences of every call give what ``memory://`` gives.

        Runs ``STORAGE_CORE_CONFORMANCE_EXAMPLES`` examples (200 with ``CI``
        set, else 50), each in a fresh id namespace on its own event loop.
        """

        class Machine(ConformanceMachine):
            config = MachineConfig(
                storage_factory.url, storage_factory.options, storage_factory.timeout
            )

        run_state_machine_as_test(Machine, settings=settings(
            max_examples=example_count(),
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                   HealthCheck.function_scoped_fixture],
        ))
