"""The libSQL backend against the storage_core conformance suite.

``file:`` runs on a temporary file; the other classes on real sqld servers
(see conftest.py), one database per server shared by the tests of a session.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import libsql_client
import pytest

from storage_core_conformance import ConformanceTests, Conversation, RawRow, RawRows

SELECT = ("SELECT message_index, role, content, timestamp FROM conversations "
          "WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index")


def file_rows(path: Path) -> RawRows:
    """The ``raw_rows`` reader of a local file: the table read with sqlite3."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        with closing(sqlite3.connect(path)) as db:
            return db.execute(SELECT, tuple(conv)).fetchall()

    return read


def server_rows(url: str, auth_token: str | None = None) -> RawRows:
    """The ``raw_rows`` reader of a server: the table read with libsql-client."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        async with libsql_client.create_client(url, auth_token=auth_token) as client:
            result = await client.execute(SELECT, list(conv))
        return [tuple(row) for row in result.rows]

    return read


class TestLibsqlFile(ConformanceTests):
    """``file:path``, as agent-squad's ``SqlChatStorage('file:local.db')``."""

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"file:{tmp_path}/chat.db"

    @pytest.fixture
    def raw_rows(self, tmp_path: Path) -> RawRows:
        return file_rows(tmp_path / "chat.db")


class TestLibsqlHttp(ConformanceTests):
    """Hrana over HTTP (no interactive transactions: every save is one batch)."""

    @pytest.fixture
    def storage_url(self, sqld_server: Any) -> str:
        return sqld_server.http_url

    @pytest.fixture
    def raw_rows(self, sqld_server: Any) -> RawRows:
        return server_rows(sqld_server.http_url)


class TestLibsqlWebSocket(ConformanceTests):
    """Hrana over a WebSocket, through the ``libsql://...?tls=0`` form."""

    @pytest.fixture
    def storage_url(self, sqld_server: Any) -> str:
        return sqld_server.libsql_url

    @pytest.fixture
    def raw_rows(self, sqld_server: Any) -> RawRows:
        return server_rows(sqld_server.http_url)


class TestLibsqlAuth(ConformanceTests):
    """A server that requires a token, given as ``auth_token``."""

    @pytest.fixture
    def storage_url(self, sqld_auth_server: Any) -> str:
        return sqld_auth_server.ws_url

    @pytest.fixture
    def storage_options(self, sqld_auth_server: Any) -> dict[str, Any]:
        return {"auth_token": sqld_auth_server.token}

    @pytest.fixture
    def raw_rows(self, sqld_auth_server: Any) -> RawRows:
        return server_rows(sqld_auth_server.http_url, sqld_auth_server.token)


class TestLibsqlReplicaWithPrimary(ConformanceTests):
    """A replica URL with its primary named: the whole contract holds."""

    @pytest.fixture
    def storage_url(self, sqld_replica_pair: Any) -> str:
        primary = quote(sqld_replica_pair.primary.http_url, safe="")
        return f"{sqld_replica_pair.replica.http_url}?primary={primary}"

    @pytest.fixture
    def raw_rows(self, sqld_replica_pair: Any) -> RawRows:
        """Read on the primary: what the writes stored."""
        return server_rows(sqld_replica_pair.primary.http_url)


class TestLibsqlBareReplica(ConformanceTests):
    """A bare replica (``?replica=1``): reads may lag, as declared."""

    @pytest.fixture
    def storage_url(self, sqld_replica_pair: Any) -> str:
        return f"{sqld_replica_pair.replica.ws_url}?replica=1"
