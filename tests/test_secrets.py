"""Secret hygiene on the backends without a server (the server backends run
the same probe against a real server in their own tests)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from storage_core_conformance.secrets import secret_leaks

CANARY = "canary-Z9tQ4mV7"


def test_probe_finds_a_leak() -> None:
    # The probe itself must be able to fail: a URL that echoes its secret.
    assert secret_leaks(f"memory:///{CANARY}", CANARY, cli=False) != []


def test_memory_rejects_a_token_without_showing_it() -> None:
    assert secret_leaks("memory://", CANARY, {"auth_token": CANARY}) == []


@pytest.mark.skipif(importlib.util.find_spec("storage_core_sqlite") is None,
                    reason="the SQLite backend is not installed (core-only run)")
def test_sqlite_never_shows_a_token(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/s.db"
    assert secret_leaks(f"{url}?authToken={CANARY}", CANARY) == []
    assert secret_leaks(url, CANARY, {"password": CANARY}) == []
