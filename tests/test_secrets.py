"""Secret hygiene on the backends without a server (the server backends run
the same probe against a real server in their own tests)."""

from __future__ import annotations

import asyncio
import importlib.util
import traceback
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from storage_core import StorageError, make_storage
from storage_core._urls import scrub_exception
from storage_core.backend import BackendSpec, MemoryBackend, Secret, StorageURL, hookimpl
from storage_core.plugins import register_plugin, unregister_plugin
from storage_core_conformance.secrets import secret_leaks, url_shape_leaks

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


# Issue 17: every URL shape that leaked, on the backends without a server.


def test_memory_url_shapes_never_show_a_credential() -> None:
    assert url_shape_leaks("memory://") == []


@pytest.mark.skipif(importlib.util.find_spec("storage_core_sqlite") is None,
                    reason="the SQLite backend is not installed (core-only run)")
def test_sqlite_url_shapes_never_show_a_credential(tmp_path: Path) -> None:
    assert url_shape_leaks(f"sqlite:///{tmp_path}/s.db") == []


class EchoBackend(MemoryBackend):
    """Fails as a careless driver does: its error repeats every credential it
    was given, revealed, percent-encoded and nested URLs included."""

    def __init__(self, url: StorageURL, options: Mapping[str, Any]) -> None:
        super().__init__()
        revealed = [url.render(reveal=True), *map(str, url.query.values())]
        revealed += [url.query_value(k) or "" for k in url.query]
        revealed += [v.reveal() if isinstance(v, Secret) else str(v) for v in options.values()]
        if url.password is not None:
            revealed.append(url.password.reveal())
        self.echo = " ".join(revealed)

    async def initialize(self) -> None:
        raise OSError(f"cannot connect with {self.echo}")


def echo_factory(url: StorageURL, options: Mapping[str, Any]) -> MemoryBackend:
    return EchoBackend(url, options)


class EchoPlugin:
    @hookimpl
    def storage_core_claim_url(self, url: StorageURL) -> BackendSpec | None:
        if url.scheme != "echo":
            return None
        return BackendSpec("echo", f"{__name__}:echo_factory", "echo-test")


@pytest.fixture
def echo() -> Iterator[None]:
    name = register_plugin(EchoPlugin())
    yield
    unregister_plugin(name)


A, B = "Kq7VxLm", "Rt4WzPn"


@pytest.mark.usefixtures("echo")
@pytest.mark.parametrize(
    "url",
    [
        f"echo://app:{A}%2F%3F{B}@h/db",  # percent-encoded: raw and decoded forms
        f"echo://app:{A}@{B}@h/db",
        f"echo://h/db?primary=http://u:{A}@h2",
        f"echo://h/db?primary={quote(f'http://u:{A}/{B}@h2', safe='')}",
        f"echo://h/db?primary={quote(f'http://h2?authToken={A}', safe='')}",
        f"echo://h/db?token={A}%26{B}",
    ],
)
def test_driver_errors_echoing_url_credentials_are_scrubbed(url: str) -> None:
    async def run() -> str:
        storage = make_storage(url)
        with pytest.raises(StorageError) as info:
            await storage.initialize()
        assert "cannot connect" in str(info.value)
        return str(info.value) + repr(storage) + storage.url

    shown = asyncio.run(run())
    assert A not in shown and B not in shown


@pytest.mark.usefixtures("echo")
def test_driver_errors_echoing_option_credentials_are_scrubbed() -> None:
    async def run() -> str:
        storage = make_storage("echo://h/db", primary_url=f"http://u:{A}%40x@h2",
                               password=Secret(B))
        with pytest.raises(StorageError) as info:
            await storage.initialize()
        return str(info.value)

    shown = asyncio.run(run())
    assert "cannot connect" in shown and A not in shown and B not in shown


@pytest.mark.usefixtures("echo")
def test_url_shapes_on_a_backend_whose_errors_echo_its_url() -> None:
    assert url_shape_leaks("echo://h/db") == []


@pytest.mark.usefixtures("echo")
def test_url_shapes_probe_catches_a_driver_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    # The probe must be able to fail: with the scrub list emptied, the echo shows.
    monkeypatch.setattr("storage_core._factory.url_secrets", lambda url: [])
    monkeypatch.setattr("storage_core._storage.scrub_exception", lambda exc, secrets: None)
    assert url_shape_leaks("echo://h/db", cli=False) != []


class ChattyError(Exception):
    def __str__(self) -> str:
        return f"login as app with {A}"


@pytest.mark.parametrize(
    "cause",
    [OSError(13, f"denied for {A}", f"/x/{B}"), ChattyError(), ValueError(f"bad {A}", B)],
)
def test_scrub_reaches_the_causes_a_traceback_shows(cause: Exception) -> None:
    try:
        try:
            raise cause
        except Exception as inner:
            raise StorageError("open failed") from inner
    except StorageError as exc:
        scrub_exception(exc, [A, B])
        text = "".join(traceback.format_exception(exc))
    assert "open failed" in text and "***" in text
    assert A not in text and B not in text
