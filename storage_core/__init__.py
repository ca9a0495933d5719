"""storage_core: conversation-history storage for multi-agent LLM applications.

::

    from storage_core import make_storage

    async with make_storage("sqlite:///chat.db") as storage:
        await storage.save_chat_message("u1", "s1", "support",
                                        {"role": "user", "content": [{"text": "hi"}]})
        history = await storage.fetch_chat("u1", "s1", "support", max_history_size=20)

Everything public is importable from here; plugin authors also use
[`storage_core.hookspecs`][storage_core.hookspecs] (``hookimpl``) and
[`storage_core.errors`][storage_core.errors].
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
from ._factory import make_storage
from ._limits import Limits
from ._memory import MemoryBackend
from ._model import Message, SessionInfo, StoredMessage
from ._plugins import (
    BLOCK_ENV,
    ENTRY_POINT_GROUP,
    build_registry,
    get_plugin_manager,
    load_failures,
    register_plugin,
    unregister_plugin,
)
from ._registry import BackendFactory, BackendRegistry, BackendSpec
from ._retry import RetryPolicy
from ._rules import (
    TrimMode,
    assign_timestamps,
    drop_consecutive_roles,
    keep_count,
    newest,
    prefix_agent,
)
from ._storage import ChatStorage
from ._urls import REDACTED, Secret, StorageURL, parse_url, redact_text
from .errors import (
    AuthenticationError,
    ClosedError,
    ConfigurationError,
    ConflictError,
    MissingDriverError,
    RunningLoopError,
    StorageError,
    TransientError,
    ValidationError,
)
from .hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "BLOCK_ENV",
    "ENTRY_POINT_GROUP",
    "REDACTED",
    "REQUESTS_REMEMBERED",
    "AppendRequest",
    "AppendResult",
    "AuthenticationError",
    "Backend",
    "BackendFactory",
    "BackendRegistry",
    "BackendSpec",
    "Capabilities",
    "ChatStorage",
    "ClosedError",
    "ConfigurationError",
    "ConflictError",
    "ConversationKey",
    "Limits",
    "MemoryBackend",
    "Message",
    "MissingDriverError",
    "NewRow",
    "RetryPolicy",
    "RowValues",
    "RunningLoopError",
    "Secret",
    "SessionInfo",
    "StorageError",
    "StorageURL",
    "StoredMessage",
    "StoredRow",
    "SupportsDeleteConversation",
    "SupportsPaging",
    "SupportsPop",
    "TableRow",
    "TableTools",
    "TransientError",
    "TrimMode",
    "ValidationError",
    "__version__",
    "assign_timestamps",
    "build_registry",
    "drop_consecutive_roles",
    "get_plugin_manager",
    "hookimpl",
    "keep_count",
    "load_failures",
    "make_storage",
    "newest",
    "parse_url",
    "prefix_agent",
    "redact_text",
    "register_plugin",
    "replayed_rows",
    "reused_request",
    "unregister_plugin",
]
