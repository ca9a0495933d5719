"""Isolation between users, sessions and agents; Unicode and large content."""

from __future__ import annotations

from typing import Any

import pytest

from ._support import FreshIds, StorageFactory, msg, requires, summary, texts

__all__ = ["IsolationTests", "UnicodeTests"]

aio = pytest.mark.asyncio

UNICODE_TEXTS = [
    "emoji \N{WAVING HAND SIGN}\N{EMOJI MODIFIER FITZPATRICK TYPE-4} "
    "\N{MAN}\u200d\N{WOMAN}\u200d\N{GIRL} \N{MUSICAL SYMBOL G CLEF}",
    "RTL \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u202eevil\u202c",
    "controls \x01\x02\x07\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x9f",
    "NUL inside content a\x00b",
    "combining e\u0301 vs \u00e9, BOM \ufeff, ZWSP \u200b, nbsp\u00a0, \u2028\u2029",
    "CJK \u6f22\u5b57 \ud55c\uad6d\uc5b4, max BMP \uffff, last plane \U0010fffd",
    "quotes ' \" ` \\ \\u0000 {} [] </script>",
]


class IsolationTests:
    """No call returns or touches another user's, session's or agent's rows."""

    @requires("read_your_writes")
    @aio
    async def test_users_never_mix(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        u1, u2, session, agent = fresh_ids("u1"), fresh_ids("u2"), fresh_ids("s"), fresh_ids("a")
        async with storage_factory.open() as s:
            h1 = await s.save_chat_message(u1, session, agent, msg("user", "one", 1))
            h2 = await s.save_chat_message(u2, session, agent, msg("user", "two", 2))
            assert summary(h1) == [(0, "user", "one")]
            assert summary(h2) == [(0, "user", "two")], "another user's rows leaked into a save"
            await s.save_chat_message(u2, session, agent, msg("assistant", "two-b", 3))
            assert texts(await s.fetch_chat(u1, session, agent)) == ["one"]
            assert texts(await s.fetch_all_chats(u1, session)) == ["one"]
            assert [(x.session_id, x.message_count) for x in await s.list_sessions(u1)] == [
                (session, 1)]
            assert [(x.session_id, x.message_count) for x in await s.list_sessions(u2)] == [
                (session, 2)]

    @requires("read_your_writes")
    @aio
    async def test_sessions_and_agents_never_mix(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user, s1, s2, a1, a2 = (fresh_ids(x) for x in ("u", "s1", "s2", "a1", "a2"))
        async with storage_factory.open() as s:
            await s.save_chat_message(user, s1, a1, msg("user", "s1a1", 1))
            await s.save_chat_message(user, s1, a2, msg("user", "s1a2", 2))
            await s.save_chat_message(user, s2, a1, msg("user", "s2a1", 3))
            h = await s.save_chat_message(user, s2, a1, msg("assistant", "s2a1-b", 4),
                                          max_history_size=1)
            assert summary(h) == [(1, "assistant", "s2a1-b")]
            assert summary(await s.fetch_chat(user, s1, a1)) == [(0, "user", "s1a1")]
            assert summary(await s.fetch_chat(user, s1, a2)) == [(0, "user", "s1a2")]
            assert texts(await s.fetch_all_chats(user, s1)) == ["s1a1", "s1a2"]
            assert texts(await s.fetch_all_chats(user, s2)) == ["[" + a1 + "] s2a1-b"]

    @requires("read_your_writes")
    @aio
    async def test_deletes_touch_only_their_target(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        u1, u2, s1, s2, agent = (fresh_ids(x) for x in ("u1", "u2", "s1", "s2", "a"))
        async with storage_factory.open() as s:
            for user in (u1, u2):
                for session in (s1, s2):
                    await s.save_chat_message(user, session, agent, msg("user", "x", 1))
            assert await s.delete_session(u1, s1) == 1
            assert [x.session_id for x in await s.list_sessions(u1)] == [s2]
            assert sorted(x.session_id for x in await s.list_sessions(u2)) == sorted([s1, s2])
            assert texts(await s.fetch_chat(u2, s1, agent)) == ["x"]
            assert await s.delete_user(u2) == 2
            assert await s.list_sessions(u2) == []
            assert texts(await s.fetch_chat(u1, s2, agent)) == ["x"]

    @requires("read_your_writes")
    @aio
    async def test_ids_compared_exactly(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        """Ids differing in case, spaces, Unicode normalisation or LIKE wildcards are distinct."""
        base = fresh_ids("id")
        variants = [base, base.upper(), base + " ", " " + base, base + "%", base + "_",
                    base.replace("-", "_"), base + "\u00e9", base + "e\u0301"]
        session, agent = fresh_ids("s"), fresh_ids("a")
        async with storage_factory.open() as s:
            for i, user in enumerate(variants):
                await s.save_chat_message(user, session, agent, msg("user", str(i), i))
            for i, user in enumerate(variants):
                assert texts(await s.fetch_chat(user, session, agent)) == [str(i)], repr(user)
                assert await s.delete_user(user) == 1, repr(user)


class UnicodeTests:
    """Any Unicode text round-trips exactly, in content and in ids; so does 1 MiB."""

    @aio
    async def test_unicode_content_round_trips(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        contents: list[Any] = [[{"text": t, t: t}] for t in UNICODE_TEXTS]
        batch = [{"role": "user" if i % 2 == 0 else "assistant", "content": content,
                  "timestamp": i} for i, content in enumerate(contents)]
        async with storage_factory.open() as s:
            h = await s.save_chat_messages(*c, batch)
            assert [m.content for m in h] == contents
            if s.capabilities.read_your_writes:
                assert [m.content for m in await s.fetch_chat(*c)] == contents

    @aio
    async def test_unicode_ids_and_roles_round_trip(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        user = fresh_ids("\N{BUST IN SILHOUETTE}\u05de\u05e9\u05ea\u05de\u05e9")
        session = fresh_ids("\u062c\u0644\u0633\u0629 \N{SPIRAL CALENDAR PAD}")
        agent = fresh_ids("\u05e1\u05d5\u05db\u05df-\N{ROBOT FACE}\u202e")
        role = "assistant-\N{ROBOT FACE}\u200d"
        async with storage_factory.open() as s:
            h = await s.save_chat_message(user, session, agent, {"role": role, "content": "x"})
            assert (h[0].role, h[0].agent_id) == (role, agent)
            if s.capabilities.read_your_writes:
                assert await s.fetch_chat(user, session, agent) == h
                sessions = await s.list_sessions(user)
                assert [(x.session_id, x.agent_ids) for x in sessions] == [(session, (agent,))]
                h2 = await s.save_chat_message(
                    user, session, agent, {"role": "assistant", "content": [{"text": "hi"}]})
                view = await s.fetch_all_chats(user, session)
                assert view[-1].content == [{"text": f"[{agent}] hi"}]
                assert view[-1].index == h2[-1].index

    @aio
    async def test_one_mib_content_round_trips(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        mib = 1024 * 1024
        unit = "0123456789abcdef\N{WAVING HAND SIGN}\u05e9\n"
        big_text = (unit * (mib // len(unit) + 1))[:mib]
        content = [{"text": big_text}, {"text": "x" * mib}]
        async with storage_factory.open() as s:
            h = await s.save_chat_message(*c, {"role": "user", "content": content})
            assert h[0].content == content
            h = await s.save_chat_messages(*c, [
                {"role": "assistant", "content": "y" * mib},
                {"role": "user", "content": [{"text": big_text[::-1]}]},
            ])
            assert [m.index for m in h] == [0, 1, 2]
            assert h[1].content == "y" * mib
            assert h[2].content == [{"text": big_text[::-1]}]
            if s.capabilities.read_your_writes:
                assert await s.fetch_chat(*c) == h

    @aio
    async def test_json_values_round_trip(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds
    ) -> None:
        c = fresh_ids.conv()
        contents: list[Any] = [
            [{"text": "a", "n": 1, "f": 0.1, "big": 2**62, "neg": -17, "e": 1e300,
              "t": True, "no": False, "null": None, "nested": {"l": [1, [2, [3, {}]]]}}],
            [], {}, "", "just a string", 0, 1.5, None, True,
            [{"text": ""}], [{"text": "a"}, {"text": "b"}, {"": ""}],
        ]
        batch = [{"role": "user" if i % 2 == 0 else "assistant", "content": content}
                 for i, content in enumerate(contents)]
        async with storage_factory.open() as s:
            h = await s.save_chat_messages(*c, batch)
            assert [m.content for m in h] == contents
            assert [type(m.content) for m in h] == [type(x) for x in contents]
            assert [type(v) for v in h[0].content[0].values()] == [
                type(v) for v in contents[0][0].values()]
            if s.capabilities.read_your_writes:
                assert await s.fetch_chat(*c) == h
