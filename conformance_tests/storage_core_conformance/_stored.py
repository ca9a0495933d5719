"""The stored format: what the ``conversations`` table holds, read with the
backend's own driver (the ``raw_rows`` fixture), not through storage_core."""

from __future__ import annotations

import json
from typing import Any

import pytest

from storage_core.backend import TableRow, TableTools

from ._support import FreshIds, RawRows, StorageFactory

__all__ = ["AGENT_SQUAD_CONTENTS", "StoredFormatTests", "stored_text"]

aio = pytest.mark.asyncio

# Content with several keys per block and several blocks, non-ASCII, escapes,
# key order that is not sorted, and every JSON type but float (whose spelling
# the encoders may choose: 1e-07 or 1e-7).
AGENT_SQUAD_CONTENTS: list[Any] = [
    [{"text": "h\u00e9llo \u2713 \N{GRINNING FACE}", "cache": "z"},
     {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"q": "\u00fc", "n": 3}}}],
    "a plain string with \"quotes\", \\ / \n\t\x1f\x7f\u2028 and \ufeff",
    {"z": 1, "a": {"nested": ["\u00e9", None, True, False, -7, 2**63]}},
    [],
    [{"image": {"format": "png", "source": {"bytes": "iVBORw0K"}}}, {"text": ""}],
    12345,
]


def stored_text(content: Any) -> str:
    """The JSON text storage_core stores for ``content``: compact, UTF-8 (not
    ASCII-escaped), keys in the order given; agent-squad reads it with
    ``json.loads``."""
    return json.dumps(content, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class StoredFormatTests:
    """Content is stored as the JSON text agent-squad's readers take."""

    @aio
    async def test_content_is_stored_as_agent_squad_json(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds, raw_rows: RawRows | None,
    ) -> None:
        """Each row's ``content`` is the compact UTF-8 JSON text of the content
        as given (``json.dumps(content, ensure_ascii=False, separators=(",",
        ":"))``), with the role, index and timestamp as saved; rows imported in
        agent-squad's own form (``json.dumps(content)``, ASCII-escaped) are
        stored as they are and read back as the same content."""
        if raw_rows is None:
            pytest.skip("the test class provides no raw_rows fixture (no driver to read with)")
        c = fresh_ids.conv()
        roles = ["user", "assistant"]
        batch = [{"role": roles[i % 2], "content": content, "timestamp": 100 + i}
                 for i, content in enumerate(AGENT_SQUAD_CONTENTS)]
        async with storage_factory.open(skip_consecutive_roles=False) as s:
            await s.append_messages(*c, batch[:2])
            await s.save_chat_messages(*c, batch[2:4])
            for m in batch[4:]:
                await s.save_chat_message(*c, m)
            got = [(int(i), str(r), str(t), int(ts)) for i, r, t, ts in await raw_rows(s, c)]
            want = [(i, m["role"], stored_text(m["content"]), m["timestamp"])
                    for i, m in enumerate(batch)]
            for (index, _, text, _), m in zip(got, batch, strict=False):
                assert json.loads(text) == m["content"], (
                    f"row {index}: agent-squad's json.loads reads other content")
            assert got == want, "the content column is not the JSON text storage_core writes"
            if not isinstance(s.raw.backend, TableTools):
                return
            imported = fresh_ids.conv(agent="agent-squad")
            rows = [TableRow(*imported, i, roles[i % 2], json.dumps(content), 7 + i)
                    for i, content in enumerate(AGENT_SQUAD_CONTENTS)]
            assert await s._t(s.raw.import_rows(rows)) == len(rows)
            assert [tuple(row) for row in await raw_rows(s, imported)] == [
                (r.message_index, r.role, r.content, r.timestamp) for r in rows
            ], "imported rows are not stored as they are"
            assert [m.content for m in await s.fetch_chat(*imported)] == AGENT_SQUAD_CONTENTS
