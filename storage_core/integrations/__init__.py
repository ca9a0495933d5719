"""Adapters that make storage_core the history store of agent frameworks.

Each adapter is a module of its own, importable only with its framework
installed (the module raises [`MissingDriverError`][storage_core.errors.MissingDriverError]
naming the extra otherwise):

- `storage_core.integrations.openai_agents`: ``StorageCoreSession``, a
  session for the OpenAI Agents SDK (``pip install 'storage-core[openai-agents]'``).
- `storage_core.integrations.langchain`: ``StorageCoreChatMessageHistory``,
  a LangChain chat message history (``pip install 'storage-core[langchain]'``).

Both store one framework item per stored message and turn the consecutive-role
rule off for the storages they open, since tool calls and their results
legitimately repeat roles.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._storage import ChatStorage
from .._validate import check_id
from ..errors import ConfigurationError, MissingDriverError, ValidationError

__all__: list[str] = []


def missing_framework(framework: str, extra: str, exc: ImportError) -> MissingDriverError:
    """The error an adapter module raises when its framework is not importable."""
    return MissingDriverError(
        f"storage_core.integrations needs {framework} for this adapter ({exc}); "
        f"install it with: pip install 'storage-core[{extra}]'",
        package=f"storage-core[{extra}]",
    )


def open_storage(url_or_storage: object, options: dict[str, Any]) -> tuple[ChatStorage, bool]:
    """The storage to use and whether the adapter owns it (and so closes it).

    A URL is opened with ``skip_consecutive_roles=False`` unless ``options``
    say otherwise; a ready storage is used as it is.
    """
    if isinstance(url_or_storage, ChatStorage):
        if options:
            raise ConfigurationError(
                "storage options apply only when a URL is given, not a ready ChatStorage"
            )
        return url_or_storage, False
    if isinstance(url_or_storage, str):
        from .._factory import make_storage

        options.setdefault("skip_consecutive_roles", False)
        return make_storage(url_or_storage, **options), True
    raise ConfigurationError(
        f"expected a storage URL or a ChatStorage, not {type(url_or_storage).__name__}"
    )


def check_ids(storage: ChatStorage, **ids: object) -> None:
    """Refuse a bad user, session or agent id at construction, not at first use."""
    for name, value in ids.items():
        check_id(name, value, storage.limits)


def check_batch(items: object, what: str) -> Sequence[Any]:
    """``items`` if it is a list or tuple (a batch), else a ValidationError."""
    if not isinstance(items, (list, tuple)):
        raise ValidationError(f"{what} must be a list, not {type(items).__name__}")
    return items
