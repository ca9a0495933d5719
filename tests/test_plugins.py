import importlib.util
from types import SimpleNamespace
from typing import Any

import pluggy
import pytest

from storage_core import ConfigurationError, MissingDriverError, _plugins, make_storage
from storage_core.backend import BackendRegistry, BackendSpec, StorageURL, hookimpl
from storage_core.plugins import (
    build_registry,
    get_plugin_manager,
    register_plugin,
    unregister_plugin,
)


class SchemePlugin:
    def __init__(self, scheme: str, target: str, dist: str, drivers: tuple[str, ...] = ()):
        self.args = (scheme, target, dist, drivers)

    @hookimpl
    def storage_core_register_backends(self, registry: BackendRegistry) -> None:
        scheme, target, dist, drivers = self.args
        registry.register(scheme, target, distribution=dist, drivers=drivers)


@pytest.fixture
def plugins() -> Any:
    names: list[str] = []

    def add(plugin: object) -> str:
        name = register_plugin(plugin)
        names.append(name)
        return name

    yield add
    for name in names:
        unregister_plugin(name)


def test_memory_is_registered_through_the_hook() -> None:
    spec = build_registry().specs["memory"]
    assert spec.distribution == "storage-core"
    assert spec.plugin == "storage_core.builtin"


def test_two_plugins_claiming_one_scheme_is_an_error(plugins: Any) -> None:
    plugins(SchemePlugin("dup", "storage_core._memory:MemoryBackend.from_url", "dist-one"))
    plugins(SchemePlugin("dup", "other_pkg.mod:factory", "dist-two"))
    claimed = r"claimed by more than one backend: .*dist-(one|two).*dist-(one|two)"
    with pytest.raises(ConfigurationError, match=claimed):
        make_storage("dup://")


def test_a_directly_registered_plugin_serves_its_scheme(plugins: Any) -> None:
    plugins(SchemePlugin("mine", "storage_core._memory:MemoryBackend.from_url", "my-dist"))
    storage = make_storage("mine://")
    assert type(storage.backend).__name__ == "MemoryBackend"


def test_unknown_hook_names_are_rejected() -> None:
    class Typo:
        @hookimpl
        def storage_core_register_backend(self, registry: BackendRegistry) -> None: ...

    with pytest.raises(ConfigurationError, match="storage_core_register_backend"):
        register_plugin(Typo())
    assert not get_plugin_manager().is_registered(Typo)


def test_claim_url_hook_wins_over_the_table(plugins: Any) -> None:
    class Claimer:
        @hookimpl
        def storage_core_claim_url(self, url: StorageURL) -> BackendSpec | None:
            if url.host == "claimed":
                return BackendSpec("x", "storage_core._memory:MemoryBackend.from_url", "claimer")
            return None

    plugins(Claimer())
    assert type(make_storage("nothing-registered://claimed").backend).__name__ == "MemoryBackend"
    with pytest.raises(ConfigurationError, match="unknown storage URL scheme"):
        make_storage("nothing-registered://elsewhere")


def test_missing_driver_names_the_package(plugins: Any) -> None:
    plugins(SchemePlugin("needsdrv", "x.y:z", "storage-core-needsdrv", ("no_such_driver_mod",)))
    with pytest.raises(MissingDriverError, match="pip install storage-core-needsdrv") as info:
        make_storage("needsdrv://h/db")
    assert isinstance(info.value, ImportError) and isinstance(info.value, ValueError)
    assert info.value.package == "storage-core-needsdrv"


def test_unknown_scheme_lists_known_ones() -> None:
    with pytest.raises(ConfigurationError, match=r"installed schemes: .*memory"):
        make_storage("nosuch://x")


# Our backends are not on PyPI: the hint gives the two installs that work
# (docs/install.md), never a bare `pip install storage-core-...`.
@pytest.mark.parametrize(
    ("scheme", "distribution", "checkout"),
    [
        ("sqlite", "storage-core-sqlite", "pip install -e backends/sqlite;"),
        ("sqlite+aiosqlite", "storage-core-sqlite", "pip install -e backends/sqlite;"),
        ("postgresql", "storage-core-postgres", "pip install -e backends/postgres;"),
        ("libsql", "storage-core-libsql", "pip install -e backends/sqlite -e backends/libsql;"),
        ("file", "storage-core-libsql", "pip install -e backends/sqlite -e backends/libsql;"),
    ],
)
def test_known_scheme_nobody_registered_gives_installs_that_work(
    scheme: str, distribution: str, checkout: str
) -> None:
    with pytest.raises(MissingDriverError) as info:
        BackendRegistry().lookup(scheme)
    message = str(info.value)
    assert info.value.package == distribution
    assert f"install the {distribution} distribution" in message
    assert f"from a checkout's root: {checkout}" in message
    assert f"pip install --find-links dist {distribution};" in message
    assert "uv build --all-packages" in message and "docs/install.md" in message
    assert f"pip install {distribution} " not in message + " "
    assert "\n" not in message


def test_known_scheme_without_its_backend_says_what_to_install() -> None:
    installed = importlib.util.find_spec("storage_core_postgres") is not None
    if installed:
        assert "postgresql" in build_registry().specs
    else:
        with pytest.raises(MissingDriverError, match="pip install -e backends/postgres"):
            make_storage("postgresql://u:pw@h/db")


def test_sqlite_scheme_present_or_named() -> None:
    if importlib.util.find_spec("storage_core_sqlite") is not None:
        assert build_registry().specs["sqlite"].distribution == "storage-core-sqlite"
    else:
        with pytest.raises(MissingDriverError, match="pip install -e backends/sqlite"):
            make_storage("sqlite:///chat.db")


class FakeEntryPoint:
    def __init__(self, name: str, dist: str, error: Exception | None) -> None:
        self.name = name
        self.dist = SimpleNamespace(name=dist)
        self.error = error

    def load(self) -> object:
        if self.error is not None:
            raise self.error
        return SchemePlugin("fromep", "storage_core._memory:MemoryBackend.from_url", self.dist.name)


def test_broken_and_blocked_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    eps = [
        FakeEntryPoint("broken", "broken-dist", RuntimeError("boom")),
        FakeEntryPoint("blocked", "blocked-dist", None),
        FakeEntryPoint("good", "good-dist", None),
    ]
    monkeypatch.setenv(_plugins.BLOCK_ENV, "blocked-dist")
    monkeypatch.setattr(_plugins, "_failures", [])
    pm = pluggy.PluginManager("storage_core")
    from storage_core import hookspecs

    pm.add_hookspecs(hookspecs)
    _plugins._load_entry_points(pm, eps)
    assert pm.has_plugin("good") and not pm.has_plugin("blocked")
    assert [(f.name, f.distribution) for f in _plugins._failures] == [("broken", "broken-dist")]
    assert "boom" in _plugins._failures[0].error


def test_listing_backends_imports_no_driver() -> None:
    import subprocess
    import sys

    code = (
        "import sys, storage_core.plugins; storage_core.plugins.build_registry(); "
        "print(','.join(m for m in ('aiosqlite', 'asyncpg', 'libsql_client') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
