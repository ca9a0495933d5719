"""URL parsing, options, literals and error translation (no server needed)."""

from __future__ import annotations

import subprocess
import sys

import asyncpg
import pytest

from storage_core import (
    AuthenticationError,
    ConfigurationError,
    StorageError,
    TransientError,
    make_storage,
)
from storage_core.backend import parse_url
from storage_core.plugins import build_registry, get_plugin_manager
from storage_core_postgres import PostgresConfig
from storage_core_postgres.translate import translate
from storage_core_postgres.wire import decode_copy_text, inline, literal


@pytest.mark.parametrize("scheme", ["postgresql", "postgres", "postgresql+asyncpg"])
def test_schemes_are_registered_through_the_entry_point(scheme: str) -> None:
    spec = build_registry(get_plugin_manager()).lookup(scheme)
    assert spec.distribution == "storage-core-postgres"
    storage = make_storage(f"{scheme}://u:pw@db.example:6543/chat")
    assert type(storage.backend).__name__ == "PostgresBackend"


def test_plugin_import_does_not_import_asyncpg() -> None:
    code = ("import sys, storage_core_postgres.plugin, storage_core_postgres; "
            "print('asyncpg' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_url_and_options() -> None:
    url = parse_url(
        "postgresql://alice:p%40ss@db.example:6543/chat?min_size=2&max_size=5"
        "&connect_timeout=2.5&command_timeout=0&schema=chat_v1&sslmode=require"
    )
    config = PostgresConfig.from_url(url, {"max_size": 8})
    assert (config.host, config.port, config.user, config.database) == (
        "db.example", 6543, "alice", "chat")
    assert (config.min_size, config.max_size) == (2, 8)
    assert config.connect_timeout == 2.5 and config.command_timeout is None
    assert config.schema == "chat_v1" and config.prepared_statements
    kwargs = config.connect_kwargs()
    assert kwargs["password"] == "p@ss" and kwargs["ssl"] == "require"
    assert "p@ss" not in repr(config)


@pytest.mark.parametrize("query", ["pgbouncer=1", "prepared_statements=0", "pgbouncer=yes"])
def test_pooler_mode_disables_prepared_statements(query: str) -> None:
    config = PostgresConfig.from_url(parse_url(f"postgresql://h/db?{query}"), {})
    assert not config.prepared_statements
    assert config.connect_kwargs()["statement_cache_size"] == 0


def test_socket_directory_as_host_option() -> None:
    config = PostgresConfig.from_url(parse_url("postgresql://u@/db?host=/run/postgresql"), {})
    assert config.host == "/run/postgresql"


@pytest.mark.parametrize(
    "query",
    ["nope=1", "min_size=x", "max_size=0", "min_size=5&max_size=2", "schema=a-b",
     "schema=x%22y", "sslmode=maybe", "pgbouncer=perhaps", "connect_timeout=0"],
)
def test_bad_options_are_configuration_errors(query: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        make_storage(f"postgresql://u:hunter2@h/db?{query}")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("schema", ["x%0A", "x%0D%0A", "%0Ax", "x%00", "x%20"])
def test_schema_must_be_an_identifier_to_its_last_character(schema: str) -> None:
    """A trailing newline once passed the check and created a schema named "x\\n"."""
    with pytest.raises(ConfigurationError, match="schema must be a plain identifier"):
        make_storage(f"postgresql://u@h/db?schema={schema}")


def test_unknown_keyword_option() -> None:
    with pytest.raises(ConfigurationError, match="unknown"):
        make_storage("postgresql://h/db", auth_token="x")


def test_literals() -> None:
    assert literal(None) == "NULL"
    assert literal(True) == "true"
    assert literal(-3) == "(-3)"
    assert literal("it's \\ $1") == "E'it''s \\\\ $1'"
    assert literal(["a", "b"]) == "ARRAY[E'a',E'b']"
    assert literal([]) == "ARRAY[]"
    assert inline("SELECT $1::text, $2::text", ["$2", "x"]) == "SELECT E'$2'::text, E'x'::text"
    with pytest.raises(StorageError):
        literal("nul\x00")


def test_copy_text_decoding() -> None:
    data = "a\\tb\t1\t\\N\nx\\\\y\\nz\t2\t\\r\n"
    assert decode_copy_text(data, (str, int, str)) == [("a\tb", 1, None), ("x\\y\nz", 2, "\r")]


def test_translation() -> None:
    auth = translate(asyncpg.InvalidPasswordError("password authentication failed"),
                     "connect", sent=False, write=False)
    assert isinstance(auth, AuthenticationError)
    lost = translate(asyncpg.ConnectionDoesNotExistError("gone"), "append", sent=True, write=True)
    assert isinstance(lost, TransientError) and lost.ambiguous
    assert isinstance(translate(asyncpg.SerializationError("x"), "append", sent=True,
                                write=True), TransientError)
    assert isinstance(translate(asyncpg.DeadlockDetectedError("x"), "append", sent=True,
                                write=True), TransientError)
    assert isinstance(translate(asyncpg.CannotConnectNowError("starting"), "connect",
                                sent=False, write=False), TransientError)
    refused = translate(ConnectionRefusedError(), "append", sent=False, write=True)
    assert isinstance(refused, TransientError) and not refused.ambiguous
    other = translate(asyncpg.SyntaxOrAccessError("x"), "fetch_chat", sent=True, write=False)
    assert type(other) is StorageError


def test_the_function_files_agree_with_the_constants() -> None:
    """The PL/pgSQL files carry the lock seed, the SQLSTATE of a reused request
    id and the bound on remembered requests as literals: the same as here."""
    from storage_core_postgres import sql

    append = sql.function_source("storage_core_append")
    pop = sql.function_source("storage_core_pop")
    for name in ("storage_core_append", "storage_core_append_one", "storage_core_pop"):
        text = sql.function_source(name)
        assert f"{sql._CONVERSATION_SEED}));" in text
        assert text.count("@SCHEMA@") >= 3
        assert "{" not in text.replace("{}", "")  # nothing left to format
    assert f"- {sql.REQUESTS_REMEMBERED};" in append
    assert f"ERRCODE = '{sql.REUSED_REQUEST}'" in pop
    assert f"- {sql.REQUESTS_REMEMBERED})" in pop
