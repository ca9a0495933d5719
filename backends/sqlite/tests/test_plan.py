"""The statements a remote engine sends for a save, run on a real SQLite
database (the engine sqld embeds) and compared with the in-memory reference.

storage-core-libsql sends ``AppendPlan.statements()`` to sqld as one batch;
here the same statements run on ``sqlite3`` inside one transaction, so every
batch size, chunk boundary and role-rule case is checked on SQLite itself.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from storage_core._rules import drop_consecutive_roles, newest
from storage_core.backend import AppendRequest, ConversationKey, NewRow
from storage_core_sqlite import sql
from storage_core_sqlite.plan import is_duplicate_request, plan_append

KEY = ConversationKey("u", "s", "a")
KEY_PARAMS = ("u", "s", "a")


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    for statement in sql.SCHEMA:
        conn.execute(statement)
    yield conn
    conn.close()


def _rows(count: int, first_role: str, start_ts: int = 1) -> list[NewRow]:
    roles = ("user", "assistant") if first_role == "user" else ("assistant", "user")
    return [NewRow(roles[i % 2], f'[{{"text":"m{start_ts + i}"}}]', start_ts + i)
            for i in range(count)]


def _save(db: sqlite3.Connection, rows: list[NewRow], *, skip: bool,
          keep: int | None = None, request_id: str | None = None, replay: bool = False,
          ) -> tuple[list[tuple[int, str, str]], list[tuple[int, str]]]:
    """Run a save's remote statements; (stored rows, history) as the plan reads them."""
    plan = plan_append(AppendRequest(KEY, rows, skip, keep, history=True, history_limit=keep,
                                     request_id=request_id, replay=replay))
    db.execute("BEGIN")
    results = [db.execute(text, params).fetchall() for text, params in plan.statements()]
    db.execute("COMMIT")
    result = plan.batch_result(results)
    stored = [(r.message_index, r.role, r.content) for r in result.stored]
    assert result.history is not None
    return stored, [(index, role) for _, index, role, _, _ in result.history]


def _table(db: sqlite3.Connection) -> list[tuple[int, str, str]]:
    return db.execute("SELECT message_index, role, content FROM conversations "
                      "ORDER BY message_index").fetchall()


@pytest.mark.parametrize("rows_per_insert", [3, sql.ROWS_PER_INSERT])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 10])
@pytest.mark.parametrize("first_role", ["user", "assistant"])
@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("request_ids", ["none", "fresh", "replayed"])
def test_remote_statements_match_the_reference(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch,
    rows_per_insert: int, size: int, first_role: str, skip: bool, request_ids: str,
) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_INSERT", rows_per_insert)
    expected: list[tuple[int, str, str]] = []
    # Three saves: an empty conversation, then after a stored "user" row and
    # after a stored "assistant" row, so the first row's role meets both.
    for n, ts in enumerate((1, 100, 200)):
        batch = _rows(size, first_role if n != 2 else "user", ts)
        last_role = expected[-1][1] if expected else None
        kept = drop_consecutive_roles(batch, last_role) if skip else batch
        start = expected[-1][0] + 1 if expected else 0
        want = [(start + i, r.role, r.content) for i, r in enumerate(kept)]
        rid = None if request_ids == "none" else f"r{n}"
        stored, history = _save(db, batch, skip=skip, request_id=rid,
                                replay=request_ids == "replayed")
        expected += want
        assert stored == want
        assert history == [(i, role) for i, role, _ in expected]
        assert _table(db) == expected
        if rid is not None and want:
            recorded = db.execute(sql.RECORDED, (*KEY_PARAMS, rid)).fetchone()
            assert recorded[:3] == ("append", want[0][0], len(want))


def test_a_recorded_request_fails_the_batch_and_its_record_replays_it(
    db: sqlite3.Connection,
) -> None:
    batch = _rows(3, "user")
    first, _ = _save(db, batch, skip=True, request_id="r1")
    plan = plan_append(AppendRequest(KEY, batch, True, None, history=True, history_limit=None,
                                     request_id="r1", replay=True))
    db.execute("BEGIN")

    def run_all() -> None:
        for text, params in plan.statements():
            db.execute(text, params)

    with pytest.raises(sqlite3.IntegrityError) as info:
        run_all()
    db.execute("ROLLBACK")
    assert is_duplicate_request(str(info.value))
    reads = [db.execute(text, params).fetchall() for text, params in plan.replay_reads]
    again = plan.replayed(reads[0][0], reads[1])
    assert [(r.message_index, r.role, r.content) for r in again.stored] == first
    assert len(_table(db)) == 3


def test_a_batch_over_several_statements_keeps_order_and_trims(
    db: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_INSERT", 4)
    _save(db, _rows(5, "user"), skip=True)
    batch = _rows(11, "assistant", 50)
    plan = plan_append(AppendRequest(KEY, batch, True, 6, history=True, history_limit=6))
    assert plan.insert_count == 3 == len(plan.inserts())
    stored, history = _save(db, batch, skip=True, keep=6)
    assert [i for i, _, _ in stored] == list(range(5, 16))
    table = _table(db)
    assert [(i, role) for i, role, _ in table] == history == [
        (i, r) for i, r, _ in newest(stored, 6)
    ]


def test_one_statement_for_a_default_sized_batch() -> None:
    plan = plan_append(AppendRequest(KEY, _rows(1000, "user"), True, None, False, None))
    assert plan.insert_count == 2 == len(plan.statements()) - 1  # the lock first
    assert max(len(params) for _, params in plan.statements()) == 3 + 3 * sql.ROWS_PER_INSERT
