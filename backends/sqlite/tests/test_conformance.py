"""The SQLite backend against the storage_core conformance suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage_core_conformance import ConformanceTests


class TestSqliteFile(ConformanceTests):
    """A database file per test."""

    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path}/chat.db"


@pytest.fixture(scope="module")
def shared_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("shared") / "chat.db"


class TestSqliteSharedFile(ConformanceTests):
    """One database file for every test of the class, as a server would be."""

    @pytest.fixture
    def storage_url(self, shared_db: Path) -> str:
        return f"sqlite:///{shared_db}?synchronous=normal"


class TestSqliteInMemory(ConformanceTests):
    """``sqlite:///:memory:``: one private database per storage, declared so."""

    @pytest.fixture
    def storage_url(self) -> str:
        return "sqlite:///:memory:"
