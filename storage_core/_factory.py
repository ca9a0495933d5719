"""``make_storage``: from a URL to a ready ``ChatStorage``."""

from __future__ import annotations

import logging
from typing import Any

from ._limits import Limits
from ._plugins import build_registry, get_plugin_manager
from ._retry import RetryPolicy
from ._rules import TrimMode
from ._storage import ChatStorage
from ._urls import Secret, is_secret_param, parse_url, scrub_exception
from .errors import ConfigurationError

__all__ = ["make_storage"]

log = logging.getLogger("storage_core")


def make_storage(
    url: str,
    *,
    skip_consecutive_roles: bool = True,
    trim: TrimMode = "messages",
    retry: RetryPolicy | None = None,
    limits: Limits | None = None,
    **backend_options: Any,
) -> ChatStorage:
    """Open the storage a URL names.

    ``sqlite:///chat.db``, ``memory://``, and whatever installed backend
    plugins serve (``postgresql://...``, ``libsql://...``, ...). Nothing is
    connected until ``initialize()`` or the first call.

    :param skip_consecutive_roles: do not store a message whose role equals
        the previous message's (the agent-squad rule); on by default.
    :param trim: ``"messages"`` keeps the newest ``max_history_size``
        messages; ``"pairs"`` keeps N-1 when N is odd.
    :param retry: the retry policy for transient failures.
    :param limits: size limits on ids, content and batches.
    :param backend_options: passed to the backend (for example ``auth_token``);
        a backend rejects options it does not know.
    :raises ConfigurationError: bad URL, unknown scheme or bad option.
    :raises MissingDriverError: the backend or its driver is not installed.
    """
    parsed = parse_url(url)
    pm = get_plugin_manager()
    spec = pm.hook.storage_core_claim_url(url=parsed)
    if spec is None:
        spec = build_registry(pm).lookup(parsed.scheme)
    factory = spec.load()
    secrets = [v.reveal() for v in parsed.query.values() if isinstance(v, Secret)]
    if parsed.password is not None:
        secrets.append(parsed.password.reveal())
    secrets += [
        v for k, v in backend_options.items() if isinstance(v, str) and is_secret_param(k)
    ]
    try:
        backend = factory(parsed, backend_options)
    except ConfigurationError as exc:
        scrub_exception(exc, secrets)
        raise
    except Exception as exc:
        raise ConfigurationError(
            f"the {parsed.scheme}:// backend ({spec.distribution}) failed to open "
            f"{parsed}: {type(exc).__name__}"
        ) from exc
    log.debug("opened %s with %s", parsed, spec.target)
    return ChatStorage(
        backend,
        url=parsed.render(),
        skip_consecutive_roles=skip_consecutive_roles,
        trim=trim,
        limits=limits,
        retry=retry,
        secrets=secrets,
    )
