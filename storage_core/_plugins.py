"""The plugin manager: entry points, guarded loading, blocking, registration."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

import pluggy

from . import _entry_points, hookspecs
from ._registry import BackendRegistry
from .errors import ConfigurationError

__all__ = [
    "BLOCK_ENV",
    "ENTRY_POINT_GROUP",
    "PluginLoadFailure",
    "build_registry",
    "get_plugin_manager",
    "load_failures",
    "register_plugin",
    "unregister_plugin",
]

log = logging.getLogger("storage_core.plugins")

ENTRY_POINT_GROUP = "storage_core.backends"
BLOCK_ENV = "STORAGE_CORE_BLOCK_PLUGINS"
"""Comma-separated entry-point or distribution names not to load; ``*`` blocks all."""


@dataclass(frozen=True)
class PluginLoadFailure:
    """An entry point that could not be loaded, and why."""

    name: str
    distribution: str
    error: str


_lock = threading.Lock()
_failures: list[PluginLoadFailure] = []


def _blocked() -> set[str]:
    return {p.strip() for p in os.environ.get(BLOCK_ENV, "").split(",") if p.strip()}


class _Distribution(Protocol):
    @property
    def name(self) -> str: ...


class _EntryPoint(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def dist(self) -> _Distribution | None: ...
    def load(self) -> Any: ...


def _find_entry_points() -> Iterable[_EntryPoint]:
    """The group's entry points: read directly where that gives what
    importlib.metadata gives (see `_entry_points`), else from importlib.metadata."""
    try:
        return _entry_points.entry_points(ENTRY_POINT_GROUP)
    except _entry_points.Unusual as why:
        log.debug("entry points from importlib.metadata: %s", why)
    return _metadata_entry_points()


def _metadata_entry_points() -> Iterable[_EntryPoint]:
    importlib.import_module("importlib.metadata")  # only now: it costs ~20 ms to import
    return importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)


def _load_entry_points(pm: pluggy.PluginManager, entry_points: Iterable[_EntryPoint]) -> None:
    """Register each entry point not blocked nor already registered; record
    the ones that fail."""
    blocked = _blocked()
    for ep in entry_points:
        dist = ep.dist.name if ep.dist is not None else "?"
        if "*" in blocked or ep.name in blocked or dist in blocked:
            log.debug("plugin %s from %s blocked by %s", ep.name, dist, BLOCK_ENV)
            continue
        if pm.has_plugin(ep.name):
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the host down
            failure = PluginLoadFailure(ep.name, dist, f"{type(exc).__name__}: {exc}")
            _failures.append(failure)
            log.warning("storage_core plugin %r from %s failed to load: %s",
                        ep.name, dist, failure.error)


@functools.lru_cache(maxsize=1)
def get_plugin_manager() -> pluggy.PluginManager:
    """The process-wide plugin manager, created on first use."""
    with _lock:
        pm = pluggy.PluginManager(hookspecs.PROJECT)
        pm.add_hookspecs(hookspecs)
        from . import _builtin

        pm.register(_builtin, name="storage_core.builtin")
        _load_entry_points(pm, _find_entry_points())
        try:
            pm.check_pending()
        except pluggy.PluginValidationError as exc:
            raise ConfigurationError(f"a storage_core plugin is invalid: {exc}") from exc
        return pm


def load_failures() -> list[PluginLoadFailure]:
    """Entry points that failed to load in this process."""
    get_plugin_manager()
    return list(_failures)


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object (module, class or instance) directly.

    Returns the name it was registered under, for `unregister_plugin`.
    Unknown ``storage_core_*`` hook names are rejected.
    """
    pm = get_plugin_manager()
    registered = pm.register(plugin, name=name)
    if registered is None:
        raise ConfigurationError(f"plugin {name or plugin!r} is blocked or already registered")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(plugin)
        raise ConfigurationError(f"plugin {registered!r} is invalid: {exc}") from exc
    return registered


def unregister_plugin(name: str) -> None:
    """Remove a plugin registered with [`register_plugin`][storage_core.plugins.register_plugin]."""
    get_plugin_manager().unregister(name=name)


def build_registry(pm: pluggy.PluginManager | None = None) -> BackendRegistry:
    """Ask every plugin for its schemes and return the filled registry."""
    pm = pm or get_plugin_manager()
    registry = BackendRegistry()
    hook = "storage_core_register_backends"
    # One plugin at a time (in registration order), so that each scheme's
    # BackendSpec names the plugin that registered it.
    for impl in reversed(getattr(pm.hook, hook).get_hookimpls()):
        others = [p for name, p in pm.list_name_plugin() if name != impl.plugin_name]
        with registry.registering_for(impl.plugin_name):
            pm.subset_hook_caller(hook, remove_plugins=others)(registry=registry)
    return registry
