"""The plugin manager: how backends are found, loaded, blocked and registered.

Backends are pluggy plugins in the entry-point group ``ENTRY_POINT_GROUP``
(``"storage_core.backends"``); a plugin that fails to import is skipped and
listed by [`load_failures`][storage_core.plugins.load_failures]; the
environment variable ``BLOCK_ENV`` (``STORAGE_CORE_BLOCK_PLUGINS``) names
plugins not to load.
[`register_plugin`][storage_core.plugins.register_plugin] adds one by hand
(tests, applications with a private backend).
"""

from __future__ import annotations

from ._plugins import (
    BLOCK_ENV,
    ENTRY_POINT_GROUP,
    PluginLoadFailure,
    build_registry,
    get_plugin_manager,
    load_failures,
    register_plugin,
    unregister_plugin,
)

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
