"""The embedded replica (``file:local.db?sync_url=...``) against the conformance suite.

Each test opens a local replica file of a sqld primary of this module's own
(so that the other classes' load does not make it compact its replication
log, after which a replica opening anew needs a snapshot: sqld 0.24 answered
"snapshot not found" to some); ``raw_rows`` reads the primary, so
what a test checks is what reached the primary, not only the local copy.
Needs the ``libsql`` package (the backend's ``embedded`` extra): skipped
without it locally, a failure under CI (``CI=true``).
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import libsql_client
import pytest
from storage_core_testing import Sqld, SqldUnavailable

from storage_core_conformance import ConformanceTests, Conversation, RawRow, RawRows

if importlib.util.find_spec("libsql") is None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail("the libsql package (storage-core-libsql[embedded]) is required under CI",
                    pytrace=False)
    pytest.skip("the libsql package is not installed", allow_module_level=True)

SELECT = ("SELECT message_index, role, content, timestamp FROM conversations "
          "WHERE user_id = ? AND session_id = ? AND agent_id = ? ORDER BY message_index")


def primary_rows(url: str) -> RawRows:
    """The ``raw_rows`` reader: the primary's table, read with libsql-client."""

    async def read(storage: Any, conv: Conversation) -> Sequence[RawRow]:
        async with libsql_client.create_client(url) as client:
            result = await client.execute(SELECT, list(conv))
        return [tuple(row) for row in result.rows]

    return read


@pytest.fixture(scope="module")
def embedded_primary(sqld_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The primary of the replicas, with a replication log far larger than the
    suite writes (``--max-log-size`` in MB), so it is never compacted."""
    server = Sqld(sqld_binary, tmp_path_factory.mktemp("embedded-primary"),
                  "--max-log-size", "100000")
    try:
        server.start()
    except SqldUnavailable as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"sqld is required under CI: {exc}", pytrace=False)
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def replica_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One replica file for the session: a new file would replay the primary's
    whole log, which the suite's earlier tests make long."""
    return tmp_path_factory.mktemp("embedded")


class TestLibsqlEmbeddedReplica(ConformanceTests):
    """A local replica file of a sqld primary: reads local, writes on the primary."""

    @pytest.fixture
    def storage_url(self, embedded_primary: Any, replica_dir: Path) -> str:
        url = quote(embedded_primary.http_url, safe="")
        return f"file:{replica_dir}/replica.db?sync_url={url}"

    @pytest.fixture
    def raw_rows(self, embedded_primary: Any) -> RawRows:
        return primary_rows(embedded_primary.http_url)
