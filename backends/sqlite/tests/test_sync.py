"""``storage_core.sync`` on a real SQLite file: every method, many threads,
and nothing left open (threads, file descriptors) after close."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from storage_core.sync import make_storage
from storage_core_conformance.sync import check_every_method, hammer, open_files


def test_every_method_round_trips(tmp_path: Path) -> None:
    check_every_method(make_storage(f"sqlite:///{tmp_path}/chat.db"))
    assert open_files(str(tmp_path)) == []


def test_many_calls_from_many_threads_leave_nothing_open(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    threads_before = set(threading.enumerate())
    started = time.monotonic()
    storage = make_storage(f"sqlite:///{db}", skip_consecutive_roles=False)
    hammer(storage, threads=8, calls=10_000)
    assert open_files(str(db))  # the probe sees the open database
    storage.close()
    assert time.monotonic() - started < 60
    assert set(threading.enumerate()) == threads_before
    assert open_files(str(db)) == []


def test_a_storage_never_closed_does_not_keep_the_program_from_exiting(tmp_path: Path) -> None:
    db = tmp_path / "chat.db"
    program = textwrap.dedent("""
        import sys

        from storage_core.sync import make_storage

        storage = make_storage(f"sqlite:///{sys.argv[1]}")
        storage.save_chat_message("u", "s", "a", {"role": "user", "content": "hi"})
        print("saved")
    """)
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", program, str(db)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "saved"
    assert "Traceback" not in result.stderr, result.stderr
    assert time.monotonic() - started < 10
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM conversations").fetchone() == (1,)
