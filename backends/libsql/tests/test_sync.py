"""``storage_core.sync`` on a real sqld over a WebSocket: every method, many
threads, and no thread or socket left after close."""

from __future__ import annotations

import threading
import time
from typing import Any

from storage_core.sync import make_storage
from storage_core_conformance.sync import check_every_method, hammer, open_sockets


def test_every_method_round_trips(sqld_server: Any) -> None:
    check_every_method(make_storage(sqld_server.ws_url))


def test_many_calls_from_many_threads_leave_no_thread_or_socket(sqld_server: Any) -> None:
    threads_before = set(threading.enumerate())
    sockets_before = open_sockets()
    started = time.monotonic()
    storage = make_storage(sqld_server.ws_url, skip_consecutive_roles=False)
    hammer(storage, threads=8, calls=10_000)
    assert open_sockets() - sockets_before  # the probe sees the connection
    storage.close()
    elapsed = time.monotonic() - started
    assert elapsed < 60, f"{elapsed:.1f} s"
    assert set(threading.enumerate()) == threads_before
    assert open_sockets() - sockets_before == set()


def test_every_method_round_trips_on_a_file(tmp_path: Any) -> None:
    check_every_method(make_storage(f"file:{tmp_path}/chat.db"))
