"""The CLI's data tools against real SQLite files (memory:// where no file is needed)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import json
from pathlib import Path

import pytest

from storage_core import make_storage
from storage_core.cli import main, parse_duration

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("storage_core_sqlite") is None,
    reason="the data tools are tested on SQLite files (core-only run has no SQLite backend)",
)


def run(*args: str) -> tuple[int, str]:
    out = io.StringIO()
    return main(list(args), out=out), out.getvalue()


def seed(url: str, conversations: int, per: int) -> None:
    async def go() -> None:
        async with make_storage(url) as storage:
            for c in range(conversations):
                await storage.append_messages(
                    f"user{c % 3}", f"session{c}", "agent",
                    [{"role": "user" if i % 2 == 0 else "assistant",
                      "content": [{"text": f"m{i} ✓"}], "timestamp": 1000 * c + i}
                     for i in range(per)],
                )
    asyncio.run(go())


@pytest.fixture
def src(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/src.db"
    seed(url, conversations=6, per=5)
    return url


def test_sessions_and_show(src: str) -> None:
    code, text = run("sessions", src, "user0")
    assert code == 0 and "session0" in text and "session3" in text and "session1" not in text
    code, text = run("show", src, "user0", "session3", "agent", "--last", "2", "--json")
    rows = [json.loads(line) for line in text.splitlines()]
    assert code == 0 and [r["index"] for r in rows] == [3, 4]
    code, text = run("show", src, "user0", "session3")
    assert code == 0 and "[agent] m1 ✓" in text


def test_export_import_round_trip_and_rerun_adds_nothing(src: str, tmp_path: Path) -> None:
    dump = tmp_path / "dump.jsonl"
    assert run("export", src, "-o", str(dump))[0] == 0
    lines = dump.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 30
    dst = f"sqlite:///{tmp_path}/dst.db"
    code, text = run("import", dst, str(dump))
    assert code == 0 and "inserted 30" in text
    code, text = run("import", dst, str(dump))
    assert code == 0 and "inserted 0, already present 30" in text
    assert run("export", dst, "-o", str(tmp_path / "again.jsonl"))[0] == 0
    assert (tmp_path / "again.jsonl").read_text(encoding="utf-8").splitlines() == lines


def test_copy_is_idempotent_and_keeps_indexes(src: str, tmp_path: Path) -> None:
    dst = f"sqlite:///{tmp_path}/copy.db"
    code, text = run("copy", src, dst, "-q", "--batch-size", "7")
    assert code == 0 and "inserted 30" in text
    code, text = run("copy", src, dst, "-q")
    assert code == 0 and "inserted 0, already present 30" in text

    async def check() -> None:
        async with make_storage(dst) as storage:
            rows = await storage.fetch_chat("user1", "session4", "agent")
            assert [m.index for m in rows] == [0, 1, 2, 3, 4]
            assert [m.timestamp for m in rows] == [4000, 4001, 4002, 4003, 4004]
            saved = await storage.save_chat_message(
                "user1", "session4", "agent", {"role": "assistant", "content": "next"})
            assert saved[-1].index == 5
    asyncio.run(check())


def test_import_rejects_bad_lines_without_writing(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.jsonl"
    good = {"user_id": "u", "session_id": "s", "agent_id": "a", "message_index": 0,
            "role": "user", "content": [], "timestamp": 1}
    bad.write_text(json.dumps(good) + "\n" + "{not json\n", encoding="utf-8")
    dst = f"sqlite:///{tmp_path}/bad.db"
    code, _ = run("import", dst, str(bad), "--batch-size", "10")
    assert code == 2 and "line 2" in capsys.readouterr().err
    assert "no sessions" in run("sessions", dst, "u")[1]


def test_prune(src: str) -> None:
    code, text = run("prune", src, "--older-than", "1d")  # seeded timestamps are in 1970
    assert code == 0 and "deleted 30 messages" in text
    assert "no sessions" in run("sessions", src, "user0")[1]


def test_doctor(src: str) -> None:
    code, text = run("doctor", src)
    assert code == 0 and "schema version: 2" in text and "healthy" in text


def test_doctor_reports_a_missing_index(src: str, tmp_path: Path) -> None:
    import sqlite3

    with sqlite3.connect(tmp_path / "src.db") as db:
        db.execute("DROP INDEX idx_conversations_lookup")
    # initialize() recreates it, so doctor finds it again: the schema heals itself.
    code, text = run("doctor", src)
    assert code == 0 and "idx_conversations_lookup" in text


def test_usage_errors() -> None:
    assert parse_duration("15m") == 900
    with pytest.raises(SystemExit):
        main(["prune", "memory://"])  # --older-than is required
    assert run("prune", "memory://", "--older-than", "soon")[0] == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["copy", "memory://a", "memory://b", "--batch-size", "0"])
    assert exit_info.value.code == 2
    assert run("sessions", "postgresql://u:pw@127.0.0.1:1/db", "u")[0] in (1, 2)
