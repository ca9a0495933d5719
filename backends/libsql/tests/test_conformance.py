"""The libSQL backend against the storage_core conformance suite.

``file:`` runs on a temporary file; the other classes on real sqld servers
(see conftest.py), one database per server shared by the tests of a session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from storage_core_conformance import ConformanceTests


class TestLibsqlFile(ConformanceTests):
    """``file:path``, as agent-squad's ``SqlChatStorage('file:local.db')``."""

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"file:{tmp_path}/chat.db"


class TestLibsqlHttp(ConformanceTests):
    """Hrana over HTTP (no interactive transactions: every save is one batch)."""

    @pytest.fixture
    def storage_url(self, sqld_server: Any) -> str:
        return sqld_server.http_url


class TestLibsqlWebSocket(ConformanceTests):
    """Hrana over a WebSocket, through the ``libsql://...?tls=0`` form."""

    @pytest.fixture
    def storage_url(self, sqld_server: Any) -> str:
        return sqld_server.libsql_url


class TestLibsqlAuth(ConformanceTests):
    """A server that requires a token, given as ``auth_token``."""

    @pytest.fixture
    def storage_url(self, sqld_auth_server: Any) -> str:
        return sqld_auth_server.ws_url

    @pytest.fixture
    def storage_options(self, sqld_auth_server: Any) -> dict[str, Any]:
        return {"auth_token": sqld_auth_server.token}


class TestLibsqlReplicaWithPrimary(ConformanceTests):
    """A replica URL with its primary named: the whole contract holds."""

    @pytest.fixture
    def storage_url(self, sqld_replica_pair: Any) -> str:
        primary = quote(sqld_replica_pair.primary.http_url, safe="")
        return f"{sqld_replica_pair.replica.http_url}?primary={primary}"


class TestLibsqlBareReplica(ConformanceTests):
    """A bare replica (``?replica=1``): reads may lag, as declared."""

    @pytest.fixture
    def storage_url(self, sqld_replica_pair: Any) -> str:
        return f"{sqld_replica_pair.replica.ws_url}?replica=1"
