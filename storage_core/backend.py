"""What a backend author needs: the protocol, the rows it moves, the registry.

An application needs none of this; it uses ``storage_core``. A
backend plugin implements [`Backend`][storage_core.backend.Backend] (and,
optionally, [`SupportsPop`][storage_core.backend.SupportsPop],
[`SupportsPaging`][storage_core.backend.SupportsPaging],
[`SupportsDeleteConversation`][storage_core.backend.SupportsDeleteConversation]
and [`TableTools`][storage_core.backend.TableTools]), registers its URL schemes
with ``@hookimpl`` (see [`storage_core.hookspecs`][storage_core.hookspecs]),
and may use the shared helpers here for the rules and the row mapping::

    from storage_core.backend import AppendRequest, AppendResult, Capabilities, hookimpl
"""

from __future__ import annotations

import typing as _typing

from ._backend import (
    REQUESTS_REMEMBERED,
    AppendRequest,
    AppendResult,
    Backend,
    Capabilities,
    ConversationKey,
    NewRow,
    RowValues,
    StoredRow,
    SupportsDeleteConversation,
    SupportsPaging,
    SupportsPop,
    TableRow,
    TableTools,
    replayed_rows,
    reused_request,
)
from ._registry import BackendFactory, BackendRegistry, BackendSpec
from ._rows import merge_sessions, sessions_in_order, table_rows
from ._rules import (
    assign_timestamps,
    drop_consecutive_roles,
    keep_count,
    newest,
    prefix_agent,
)
from ._urls import REDACTED, Secret, StorageURL, parse_url, redact_text
from .hookspecs import hookimpl

__all__ = [
    "REDACTED",
    "REQUESTS_REMEMBERED",
    "AppendRequest",
    "AppendResult",
    "Backend",
    "BackendFactory",
    "BackendRegistry",
    "BackendSpec",
    "Capabilities",
    "ConversationKey",
    "MemoryBackend",
    "MemoryStore",
    "NewRow",
    "RowValues",
    "Secret",
    "StorageURL",
    "StoredRow",
    "SupportsDeleteConversation",
    "SupportsPaging",
    "SupportsPop",
    "TableRow",
    "TableTools",
    "assign_timestamps",
    "drop_consecutive_roles",
    "hookimpl",
    "keep_count",
    "merge_sessions",
    "newest",
    "parse_url",
    "prefix_agent",
    "redact_text",
    "replayed_rows",
    "reused_request",
    "sessions_in_order",
    "table_rows",
]

# MemoryBackend and MemoryStore are imported on first use: every plugin module
# imports this one, and a first save on another backend need not load them.
# Hidden from type checkers, which see the names themselves.
if _typing.TYPE_CHECKING:
    from ._memory import MemoryBackend, MemoryStore
else:
    _LAZY = {"MemoryBackend", "MemoryStore"}

    def __getattr__(name: str) -> object:
        if name in _LAZY:
            from . import _memory

            return getattr(_memory, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        own = {"_typing", "_LAZY", "__getattr__", "__dir__"}
        return sorted((set(globals()) - own) | _LAZY)
