"""The in-memory reference backend against the conformance suite, and core-level
configuration errors."""

from __future__ import annotations

import pytest

from storage_core import ConfigurationError, MissingDriverError, make_storage
from storage_core_conformance import ConformanceTests


class TestMemory(ConformanceTests):
    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://"


class TestNamedMemory(ConformanceTests):
    """``memory://NAME`` is one store per process: the suite may share it."""

    @pytest.fixture
    def storage_url(self) -> str:
        return "memory://conformance-shared"


def test_unknown_scheme_lists_known_schemes() -> None:
    with pytest.raises(ConfigurationError, match="memory") as info:
        make_storage("nosuchscheme://x")
    assert "nosuchscheme" in str(info.value)


def test_uninstalled_backend_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STORAGE_CORE_BLOCK_PLUGINS", "*")
    from storage_core import _plugins

    _plugins.get_plugin_manager.cache_clear()
    try:
        with pytest.raises(MissingDriverError, match="storage-core-sqlite"):
            make_storage("sqlite:///x.db")
    finally:
        monkeypatch.delenv("STORAGE_CORE_BLOCK_PLUGINS")
        _plugins.get_plugin_manager.cache_clear()


@pytest.mark.parametrize(
    ("url", "options"),
    [
        ("", {}),
        ("no scheme", {}),
        ("memory://", {"no_such_option": 1}),
        ("memory://", {"trim": "halves"}),
        ("memory://", {"skip_consecutive_roles": "yes"}),
    ],
)
def test_bad_configuration(url: str, options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        make_storage(url, **options)
