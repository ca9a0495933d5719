"""Hook specifications for storage_core backend plugins.

A plugin is a module or object with functions marked ``@hookimpl`` and named
after these specs; it is found through the entry-point group
``storage_core.backends`` or registered with
[`storage_core.plugins.register_plugin`][storage_core.plugins.register_plugin]. The docstrings
here are the reference.
"""

from __future__ import annotations

import pluggy

from ._registry import BackendRegistry, BackendSpec
from ._urls import StorageURL

PROJECT = "storage_core"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def storage_core_register_backends(registry: BackendRegistry) -> None:
    """Register the URL schemes this plugin serves.

    Call ``registry.register(scheme, "package.module:factory",
    distribution="your-dist", drivers=("driver_module",))`` once per scheme.
    Register strings, not classes: the module is imported only when a URL
    with that scheme is opened, so listing backends never imports a driver.

    :param registry: the registry of this lookup; every plugin gets the same one.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def storage_core_claim_url(url: StorageURL) -> BackendSpec | None:
    """Claim a URL that the scheme table cannot express.

    Called before the scheme table is consulted. Return a
    [`BackendSpec`][storage_core.backend.BackendSpec] to serve the URL, or None to pass.
    Stops at the first non-None result.

    :param url: the parsed URL (its secrets are hidden in ``str`` and ``repr``).

    .. versionadded:: 0.1
    """
