"""The typed registry that plugins fill with the URL schemes they serve.

Entries are strings (``"package.module:factory"``) imported only when a URL
needs them, so listing backends never imports a driver.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._backend import Backend
from ._urls import StorageURL
from .errors import ConfigurationError, MissingDriverError

__all__ = ["BackendFactory", "BackendRegistry", "BackendSpec"]

BackendFactory = Callable[[StorageURL, Mapping[str, Any]], Backend]
"""Builds a backend from a parsed URL and the backend-specific options of
``make_storage``; it must reject options it does not know with a
[`ConfigurationError`][storage_core.errors.ConfigurationError]."""

# Only used to say what to install for a well-known scheme nobody registered.
# These distributions are not on PyPI, so the hint names the two installs that
# work (docs/install.md): from a checkout, and from wheels built by uv.
_INSTALL_HINTS = {
    "sqlite": "storage-core-sqlite",
    "postgresql": "storage-core-postgres",
    "postgres": "storage-core-postgres",
    "libsql": "storage-core-libsql",
    "file": "storage-core-libsql",
    "ws": "storage-core-libsql",
    "wss": "storage-core-libsql",
    "http": "storage-core-libsql",
    "https": "storage-core-libsql",
}
_CHECKOUT_PATHS = {
    "storage-core-sqlite": ("backends/sqlite",),
    "storage-core-postgres": ("backends/postgres",),
    "storage-core-libsql": ("backends/sqlite", "backends/libsql"),
}


def _install_hint(distribution: str) -> str:
    editable = " ".join(f"-e {path}" for path in _CHECKOUT_PATHS[distribution])
    return (
        f"install the {distribution} distribution (it is not on PyPI): "
        f"from a checkout's root: pip install {editable}; "
        f"from wheels built there by uv build --all-packages: "
        f"pip install --find-links dist {distribution}; see docs/install.md"
    )


@dataclass(frozen=True)
class BackendSpec:
    """One URL scheme and the backend that serves it."""

    scheme: str
    target: str
    distribution: str
    drivers: tuple[str, ...] = ()
    description: str = ""
    plugin: str = ""

    def load(self) -> BackendFactory:
        """Import the factory, checking the driver modules first."""
        for driver in self.drivers:
            if importlib.util.find_spec(driver) is None:
                raise MissingDriverError(
                    f"the {self.scheme}:// backend needs the Python module {driver!r}, which "
                    f"is not installed; install it with: pip install {self.distribution}",
                    package=self.distribution,
                )
        module_name, _, attr = self.target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MissingDriverError(
                f"the {self.scheme}:// backend could not be imported ({exc}); "
                f"install it with: pip install {self.distribution}",
                package=self.distribution,
            ) from exc
        factory: Any = module
        for part in attr.split("."):
            factory = getattr(factory, part)
        return factory  # type: ignore[no-any-return]


@dataclass
class BackendRegistry:
    """URL scheme -> [`BackendSpec`][storage_core.backend.BackendSpec], filled by the
    ``storage_core_register_backends`` hook."""

    _specs: dict[str, BackendSpec] = field(default_factory=dict)
    _conflicts: dict[str, list[BackendSpec]] = field(default_factory=dict)
    _current_plugin: str = ""

    @contextlib.contextmanager
    def registering_for(self, plugin: str) -> Iterator[None]:
        """Attribute the schemes registered inside the block to ``plugin``
        (its name in the plugin manager), for conflict reports."""
        previous, self._current_plugin = self._current_plugin, plugin
        try:
            yield
        finally:
            self._current_plugin = previous

    def register(
        self,
        scheme: str,
        target: str,
        *,
        distribution: str,
        drivers: tuple[str, ...] | list[str] = (),
        description: str = "",
        clobber: bool = False,
    ) -> None:
        """Declare that ``target`` (``"module:factory"``) serves ``scheme``.

        ``distribution`` is what a user installs to get it; ``drivers`` are the
        modules it imports, checked before the import so a missing one gives
        an install hint. A scheme registered twice is a conflict (reported when
        the scheme is used) unless the second registration passes ``clobber``.
        """
        scheme = scheme.lower().rstrip(":/")
        if not scheme or ":" not in target:
            raise ConfigurationError(
                f"bad backend registration {scheme!r} -> {target!r}: "
                "target must be 'module:factory'"
            )
        spec = BackendSpec(
            scheme=scheme,
            target=target,
            distribution=distribution,
            drivers=tuple(drivers),
            description=description,
            plugin=self._current_plugin,
        )
        existing = self._specs.get(scheme)
        if existing is not None and not clobber and existing.target != spec.target:
            self._conflicts.setdefault(scheme, [existing]).append(spec)
            return
        self._specs[scheme] = spec

    @property
    def specs(self) -> Mapping[str, BackendSpec]:
        """A read-only view: scheme -> spec."""
        return MappingProxyType(self._specs)

    def __iter__(self) -> Iterator[BackendSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: s.scheme))

    def lookup(self, scheme: str) -> BackendSpec:
        """The spec for ``scheme``, or a ConfigurationError saying what to install."""
        if scheme in self._conflicts:
            names = ", ".join(f"{s.distribution} ({s.target})" for s in self._conflicts[scheme])
            raise ConfigurationError(
                f"the URL scheme {scheme!r} is claimed by more than one backend: {names}; "
                "uninstall one, or block one with STORAGE_CORE_BLOCK_PLUGINS"
            )
        spec = self._specs.get(scheme)
        if spec is not None:
            return spec
        known = ", ".join(sorted(self._specs)) or "none"
        hint = _INSTALL_HINTS.get(scheme.split("+", 1)[0])
        if hint is not None:
            raise MissingDriverError(
                f"no installed backend serves {scheme}:// URLs; {_install_hint(hint)} "
                f"(installed schemes: {known})",
                package=hint,
            )
        raise ConfigurationError(
            f"unknown storage URL scheme {scheme!r}; installed schemes: {known}"
        )
