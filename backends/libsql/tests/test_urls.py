"""URL forms and options of the libSQL backend (no server needed)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from storage_core import ConfigurationError, MissingDriverError, make_storage
from storage_core_libsql import LibsqlBackend
from storage_core_sqlite import SqliteBackend

TOKEN = "eyJhbGciOiJFZERTQSJ9.c2VjcmV0LXBheWxvYWQ.c2lnbmF0dXJlLXRleHQ"


def backend(url: str, **options: Any) -> LibsqlBackend:
    storage = make_storage(url, **options)
    assert isinstance(storage.backend, LibsqlBackend)
    return storage.backend


@pytest.mark.parametrize(
    ("url", "driver_url"),
    [
        ("libsql://db-org.turso.io", "wss://db-org.turso.io"),
        ("libsql://db-org.turso.io?tls=1", "wss://db-org.turso.io"),
        ("libsql://127.0.0.1:8080?tls=0", "ws://127.0.0.1:8080"),
        ("wss://db-org.turso.io", "wss://db-org.turso.io"),
        ("ws://127.0.0.1:8080", "ws://127.0.0.1:8080"),
        ("https://db-org.turso.io", "https://db-org.turso.io"),
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::1]:8080", "http://[::1]:8080"),
        ("http://127.0.0.1:8080?timeout=2.5&max_concurrent_writes=2",
         "http://127.0.0.1:8080"),
    ],
)
def test_remote_url_forms(url: str, driver_url: str) -> None:
    b = backend(url)
    assert b.config.endpoint.driver_url == driver_url
    assert b.capabilities.read_your_writes


def test_options_from_url_and_keywords() -> None:
    b = backend("http://h:1?timeout=2.5&max_concurrent_writes=2")
    assert (b.config.timeout, b.config.max_concurrent_writes) == (2.5, 2)
    b = backend("http://h:1", timeout=3, max_concurrent_writes=1)
    assert (b.config.timeout, b.config.max_concurrent_writes) == (3.0, 1)


@pytest.mark.parametrize(
    "url",
    [
        "libsql://host?tls=0",  # a plain libsql URL needs a port
        "libsql://host?tls=2",
        "http://host:1?tls=1",
        "wss://host?tls=0",
        "http://host:1?unknown=1",
        "http://host:1?timeout=0",
        "http://host:1?timeout=soon",
        "http://host:1?max_concurrent_writes=0",
        "http://host:1?replica=maybe",
        "http://host:1?replica_reads=1",  # without a primary
        "http://host:1?primary=postgresql%3A%2F%2Fh%2Fdb",
        "http:///nohost",
        "file:",
        "file://otherhost/x.db",
        "file:x.db?mode=ro",
    ],
)
def test_bad_urls_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        make_storage(url)


def test_unknown_keyword_option_is_rejected() -> None:
    with pytest.raises(ConfigurationError, match="nonsense"):
        make_storage("http://h:1", nonsense=1)
    with pytest.raises(ConfigurationError, match="nonsense"):
        make_storage("file:x.db", nonsense=1)


def test_token_from_option_or_url_never_shown() -> None:
    for storage in (
        make_storage("libsql://db-org.turso.io", auth_token=TOKEN),
        make_storage(f"libsql://db-org.turso.io?authToken={TOKEN}"),
    ):
        b = storage.backend
        assert isinstance(b, LibsqlBackend)
        assert b.config.auth_token is not None
        assert b.config.auth_token.reveal() == TOKEN
        for text in (str(storage), repr(storage), storage.url, repr(b), repr(b.config),
                     str(b.config)):
            assert TOKEN not in text


def test_keyword_token_wins_over_url_token() -> None:
    b = backend("libsql://h?authToken=from-url", auth_token=TOKEN)
    assert b.config.auth_token is not None
    assert b.config.auth_token.reveal() == TOKEN


def test_token_in_primary_url_is_refused_without_echo() -> None:
    with pytest.raises(ConfigurationError) as info:
        make_storage("http://replica:1", primary_url=f"http://primary:2?authToken={TOKEN}")
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("url", "options"),
    [
        (f"http://u:{TOKEN}@replica:1", {}),
        (f"libsql://:{TOKEN}@db-org.turso.io", {}),
        (f"http://replica:1?primary=http://u:{TOKEN}@primary:2", {}),
        (f"http://replica:1?primary={quote(f'http://u:{TOKEN}@primary:2', safe='')}", {}),
        ("http://replica:1", {"primary_url": f"ws://u:{quote(TOKEN + '/@', safe='')}@p:2"}),
    ],
)
def test_user_information_is_refused_without_echo(url: str, options: dict[str, Any]) -> None:
    # libsql-client is never given a user or password: refuse one rather than drop it.
    with pytest.raises(ConfigurationError, match="no user name or password") as info:
        make_storage(url, **options)
    assert TOKEN not in str(info.value) and quote(TOKEN, safe="") not in str(info.value)


def test_replica_settings_and_capabilities() -> None:
    bare = backend("ws://replica:1?replica=1")
    assert not bare.capabilities.read_your_writes
    assert bare.config.primary is None

    paired = backend("http://replica:1", primary_url="http://primary:2")
    assert paired.capabilities.read_your_writes
    assert paired.config.primary is not None
    assert paired.config.primary.driver_url == "http://primary:2"
    assert "primary" in repr(paired)

    in_url = backend("http://replica:1?primary=ws%3A%2F%2Fprimary%3A2")
    assert in_url.config.primary is not None
    assert in_url.config.primary.driver_url == "ws://primary:2"

    stale = backend("http://replica:1?replica_reads=1", primary_url="http://primary:2")
    assert not stale.capabilities.read_your_writes


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:local.db", "local.db"),
        ("file:dir/local.db", "dir/local.db"),
        ("file:/abs/local.db", "/abs/local.db"),
        ("file:///abs/local.db", "/abs/local.db"),
        ("file://localhost/abs/local.db", "/abs/local.db"),
    ],
)
def test_file_urls_use_the_sqlite_engine(url: str, path: str) -> None:
    storage = make_storage(url, auth_token="ignored-for-files")
    assert isinstance(storage.backend, SqliteBackend)
    assert storage.backend.path == path


def test_schemes_are_registered() -> None:
    from storage_core import build_registry, get_plugin_manager

    specs = build_registry(get_plugin_manager()).specs
    for scheme in ("libsql", "wss", "ws", "https", "http", "file"):
        assert specs[scheme].distribution == "storage-core-libsql"


def test_missing_driver_names_the_distribution(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "libsql_client" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    with pytest.raises(MissingDriverError, match="storage-core-libsql"):
        make_storage("libsql://db-org.turso.io")
