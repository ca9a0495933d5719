"""benchmarks' report logic (issue 16): floors, targets met or missed, event-loop
stalls, cold start; and the same-work floors doing the work they claim on a
real database. No timing is asserted: the figures here are made up."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from benchmarks import coldstart
from benchmarks._data import Conv
from benchmarks._report import (
    APPEND_ONE_GOAL,
    HEADERS,
    ONE_CONVERSATION_GOAL,
    SAME_WORK_GOAL,
    build_rows,
    cost_ratio,
    floor_goal,
    loop_lines,
    markdown,
)
from benchmarks._workloads import _FullCollections


def m(target: str, workload: str, case: str, subject: str, median: float,
      unit: str = "ms", **extra: Any) -> dict[str, Any]:
    return {"target": target, "workload": workload, "case": case, "subject": subject,
            "unit": unit, "values": extra.pop("values", [median]), "errors": 0, "note": "",
            **extra}


def cells(row: Any) -> dict[str, str]:
    return dict(zip((h.strip() for h in HEADERS[:-1]), row.cells[:-1], strict=True)) | {
        "original goal": row.cells[-1]}


def test_each_row_has_a_goal_as_issue_16_sets_them() -> None:
    assert floor_goal("W1", "save 1, H=10,000") == (SAME_WORK_GOAL, "same")
    assert floor_goal("W1", "save 1, H=0, max_history_size=50") == (SAME_WORK_GOAL, "same")
    assert floor_goal("W1", "save 1, H=0, append_messages (no read-back)") == (
        APPEND_ONE_GOAL, "floor")
    assert floor_goal("W2", "fetch_all_chats, 5 agents x 200") == (SAME_WORK_GOAL, "same")
    assert floor_goal("W3", "append_messages of 100 (no read-back)") == (SAME_WORK_GOAL, "same")
    assert floor_goal("W4", "16 writers on one conversation x 10 saves") == (
        ONE_CONVERSATION_GOAL, "same")
    assert floor_goal("W4", "64 conversations x 10 saves") is None


def test_cost_ratio_is_ours_over_the_floor_and_the_rate_the_other_way() -> None:
    assert cost_ratio(3.0, 2.0, "ms") == 1.5
    assert cost_ratio(500.0, 1000.0, "saves/s") == 2.0
    assert str(cost_ratio(float("nan"), 1.0, "ms")) == "nan"
    assert str(cost_ratio(1.0, 0.0, "ms")) == "nan"


def test_a_save_is_judged_against_its_same_work_floor_and_shows_the_insert() -> None:
    case = "save 1, H=10,000"
    rows = build_rows([m("postgres", "W1", case, "ours", 30.0),
                       m("postgres", "W1", case, "floor", 0.5),
                       m("postgres", "W1", case, "same", 27.0),
                       m("postgres", "W1", case, "same-norec", 24.0)], {})
    c = cells(rows[0])
    assert (c["ours/floor"], c["same-work p50"], c["ours/same-work"]) == ("60.00x", "27.0",
                                                                          "1.11x")
    assert c["ours/same-work w/o record"] == "1.25x"
    assert c["goal"] == "<= 1.2x same-work met" and rows[0].ok == [True]
    rows = build_rows([m("postgres", "W1", case, "ours", 33.0),
                       m("postgres", "W1", case, "same", 27.0)], {})
    assert cells(rows[0])["goal"] == "<= 1.2x same-work MISSED" and rows[0].ok == [False]


def test_a_save_on_a_file_is_judged_without_the_record() -> None:
    # On a file our writes record only a caller's request id.
    case = "save 1, H=1,000"
    for target, ours, verdict in (("sqlite", 31.0, "MISSED"), ("libsql-file", 29.0, "met")):
        rows = build_rows([m(target, "W1", case, "ours", ours),
                           m(target, "W1", case, "same", 27.0),
                           m(target, "W1", case, "same-norec", 25.0)], {})
        assert cells(rows[0])["goal"] == f"<= 1.2x same-work w/o record {verdict}"


def test_append_is_judged_against_the_one_row_insert() -> None:
    case = "save 1, H=0, append_messages (no read-back)"
    rows = build_rows([m("pg", "W1", case, "ours", 0.62), m("pg", "W1", case, "floor", 0.5),
                       m("pg", "W1", case, "same", 0.6)], {})
    c = cells(rows[0])
    # the floor (one INSERT) is also its same-work floor without the record
    assert (c["ours/floor"], c["ours/same-work"], c["ours/same-work w/o record"]) == (
        "1.24x", "1.03x", "1.24x")
    assert c["goal"] == "<= 1.3x floor met"


def test_a_read_has_the_floor_as_its_same_work_floor() -> None:
    case = "fetch newest 20, H=1,000"
    rows = build_rows([m("pg", "W2", case, "ours", 1.3), m("pg", "W2", case, "floor", 1.0)],
                      {"libsql-ws": "no sqld"})
    c = cells(rows[0])
    assert (c["same-work p50"], c["ours/same-work"], c["ours/same-work w/o record"]) == (
        "1.000", "1.30x", "-")
    assert c["goal"] == "<= 1.2x same-work MISSED"
    assert rows[1].cells[:2] == ("libsql-ws", "unavailable: no sqld") and rows[1].ok == []
    assert len(rows[1].cells) == len(HEADERS)


def test_writers_on_one_conversation_compare_rates() -> None:
    case = "16 writers on one conversation x 10 saves"
    rows = build_rows([m("s", "W4", case, "ours", 1000.0, "saves/s"),
                       m("s", "W4", case, "floor", 3000.0, "saves/s"),
                       m("s", "W4", case, "same", 1400.0, "saves/s",
                         errors=2, note="Busy:\nlocked")], {})
    c = cells(rows[0])
    assert (c["ours/floor"], c["ours/same-work"]) == ("3.00x", "1.40x")
    assert c["goal"] == "<= 1.5x same-work met"
    assert "[same: 2 errors; same: Busy: locked]" in c["workload"]  # one line
    assert len(markdown(rows).splitlines()) == 3  # header, rule, the row


def test_the_locked_floor_of_one_conversation_is_shown_beside() -> None:
    case = "16 writers on one conversation x 10 saves"
    rows = build_rows([m("pg", "W4", case, "ours", 300.0, "saves/s"),
                       m("pg", "W4", case, "same", 1800.0, "saves/s"),
                       m("pg", "W4", case, "same-locked", 400.0, "saves/s")], {})
    c = cells(rows[0])
    assert ("[same-work floor under a per-conversation lock: 400/s, ours/that 1.33x]"
            in c["workload"])
    assert c["ours/same-work"] == "6.00x" and rows[0].ok == [False]


def test_the_original_goal_is_kept() -> None:
    case = "save 1, H=1,000"
    rows = build_rows([m("f", "W1", case, "ours", 2.0), m("f", "W1", case, "same", 2.0),
                       m("f", "W1", case, "original", 30.0)], {})
    assert cells(rows[0])["original goal"] == ">= 10x met" and rows[0].ok == [True, True]


def test_stalls_are_lines_of_their_own_with_the_floor_beside() -> None:
    case = "event loop during 1,000 saves on a file"
    data = [m("sqlite", "W6", case, "ours", 0, values=[0.1, 0.2, 6.5, 0.3]),
            m("sqlite", "W6", case, "same", 0, values=[0.1, 0.4]),
            m("pg", "W6", case, "ours", 0, values=[], errors=1, note="Boom")]
    assert build_rows(data, {}) == []
    (sqlite_line, sqlite_ok), (pg_line, pg_ok) = loop_lines(data)
    assert sqlite_ok is False and pg_ok is None
    assert sqlite_line.startswith(f"W6 sqlite, {case}: ours: longest stall 6.5 ms")
    assert "1 of 4 ticks over 5 ms" in sqlite_line and "same: longest stall 0.4 ms" in sqlite_line
    assert sqlite_line.endswith("goal <= 5 ms MISSED")
    assert pg_line == f"W6 pg, {case}: ours: not measured (Boom)"
    ok_line, ok = loop_lines([m("s", "W6", case, "ours", 0, values=[4.9])])[0]
    assert ok is True and ok_line.endswith("met")


def test_cold_start_runs_are_summarized_by_their_medians() -> None:
    runs = [{"subject": "ours", "import_ms": v, "first_save_ms": 2 * v} for v in (3.0, 1.0, 2.0)]
    runs.append({"subject": "ours", "error": ["boom"]})
    summary = coldstart.summarize_runs(runs)
    assert summary == {"first_save_ms": 4.0, "import_ms": 2.0, "runs": 3, "errors": [["boom"]]}


def test_cold_start_process_reports_its_figures(tmp_path: Path) -> None:
    pytest.importorskip("aiosqlite")
    result = coldstart.measure("floor", tmp_path, 0)
    assert "error" not in result, result
    assert result["import_peak_mib"] >= result["start_peak_mib"] > 0
    assert result["first_save_ms"] > 0 and result["process_ms"] > 0
    with sqlite3.connect(tmp_path / "cold-floor-0.db") as db:
        assert db.execute("SELECT COUNT(*) FROM conversations").fetchone() == (1,)


# -- the same-work floors on real databases ---------------------------------


async def _same_work_checks(raw: Any, whole_rows: Any, records: Any) -> None:
    from benchmarks._subjects import SameWork

    conv = Conv("bench-test", os.urandom(4).hex(), "a")
    await raw.seed(conv, 60, 1_000)
    same = SameWork(raw, record=True)
    await same.save(conv, None)
    assert await whole_rows(conv) == list(range(61))
    assert await records(conv) == [(61, 60, 1)]  # seq, first_index, row_count
    await same.save(conv, 50)  # insert, trim to the newest 50
    assert await whole_rows(conv) == list(range(12, 62))
    assert await raw.same_work(conv, [(62, "user", "[]", 5)], record=None, keep=3,
                               read=True) == 3
    assert await whole_rows(conv) == [60, 61, 62]
    assert len(await records(conv)) == 2  # no record without a request id
    batch = Conv("bench-test", os.urandom(4).hex(), "b")
    await SameWork(raw, record=True, read=False).save_batch(batch, 5)
    assert await whole_rows(batch) == list(range(5))
    assert await records(batch) == [(1, 0, 5)]


@pytest.mark.asyncio
async def test_same_work_floor_on_sqlite(tmp_path: Path) -> None:
    pytest.importorskip("storage_core_sqlite")
    from benchmarks._raw import AiosqliteRaw
    from storage_core import make_storage

    path = tmp_path / "bench.db"
    async with make_storage(f"sqlite:///{path}") as storage:
        await storage.initialize()  # the schema ours writes, request records included
    raw = AiosqliteRaw(str(path))
    await raw.open()
    db = sqlite3.connect(path)
    try:
        async def whole_rows(conv: Conv) -> list[int]:
            return [r[0] for r in db.execute(
                "SELECT message_index FROM conversations WHERE user_id = ? AND session_id = ?"
                " AND agent_id = ? ORDER BY message_index", conv.key)]

        async def records(conv: Conv) -> list[tuple[int, int, int]]:
            return list(db.execute(
                "SELECT seq, first_index, row_count FROM storage_core_requests WHERE user_id = ?"
                " AND session_id = ? AND agent_id = ? ORDER BY seq", conv.key))

        await _same_work_checks(raw, whole_rows, records)
    finally:
        db.close()
        await raw.close()


@pytest.mark.asyncio
async def test_same_work_floor_on_postgres() -> None:
    asyncpg = pytest.importorskip("asyncpg")
    pytest.importorskip("storage_core_postgres")
    from benchmarks._raw import AsyncpgRaw
    from benchmarks._servers import Unavailable, fresh_postgres_database
    from storage_core import make_storage

    try:
        async with fresh_postgres_database() as url:
            async with make_storage(url) as storage:
                await storage.initialize()
            raw = AsyncpgRaw(url)
            await raw.open()
            db = await asyncpg.connect(url)
            try:
                async def whole_rows(conv: Conv) -> list[int]:
                    return [r[0] for r in await db.fetch(
                        "SELECT message_index FROM conversations WHERE user_id = $1 AND "
                        "session_id = $2 AND agent_id = $3 ORDER BY message_index", *conv.key)]

                async def records(conv: Conv) -> list[tuple[int, int, int]]:
                    return [tuple(r) for r in await db.fetch(
                        "SELECT seq, first_index, row_count FROM storage_core_requests WHERE "
                        "user_id = $1 AND session_id = $2 AND agent_id = $3 ORDER BY seq",
                        *conv.key)]

                await _same_work_checks(raw, whole_rows, records)
                locked = AsyncpgRaw(url, 2, lock=True)  # a pool: the lock needs a transaction
                await locked.open()
                try:
                    conv = Conv("bench-test", "locked", "a")
                    assert await locked.same_work(conv, [(0, "user", "[]", 1)], record="r",
                                                  keep=None, read=True) == 1
                    assert await records(conv) == [(1, 0, 1)]
                finally:
                    await locked.close()
            finally:
                await db.close()
                await raw.close()
    except Unavailable as exc:
        pytest.skip(str(exc))


def test_report_json_of_a_run_is_plain_json() -> None:
    # build_rows takes what run.py writes: measurements as dicts, as JSON has them
    data = json.loads(json.dumps([m("s", "W2", "fetch whole conversation, H=1,000", "ours", 1.0),
                                  m("s", "W2", "fetch whole conversation, H=1,000", "floor", 1.0)]))
    assert build_rows(data, {})[0].ok == [True]


def test_full_collections_during_the_stall_run_are_shown() -> None:
    case = "event loop during 1,000 saves on a file"
    data = [m("sqlite", "W6", case, "ours", 0, values=[0.1, 31.5],
              note="1 full GC, longest 31.0 ms")]
    line, ok = loop_lines(data)[0]
    assert "ticks over 5 ms (1 full GC, longest 31.0 ms)" in line and ok is False


def test_full_collections_are_counted_and_timed() -> None:
    collections = _FullCollections()
    gc.callbacks.append(collections)
    try:
        gc.collect(1)
        assert collections.summary() == "no full GC"
        gc.collect()
        gc.collect()
    finally:
        gc.callbacks.remove(collections)
    assert len(collections.durations) == 2 and all(d >= 0 for d in collections.durations)
    assert collections.summary().startswith("2 full GC, longest ")
