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
from ._memory import MemoryBackend, MemoryStore
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
