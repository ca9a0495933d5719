"""Limits on input, enforced by the core before anything is written."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigurationError

__all__ = ["Limits"]

MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True)
class Limits:
    """Upper bounds on what one call may store.

    ``max_content_bytes`` bounds one message's content as UTF-8 JSON;
    ``max_id_length`` bounds user, session and agent ids and roles (in
    characters); ``max_batch_size`` bounds the messages of one batch save.
    """

    max_content_bytes: int = 4 * 1024 * 1024
    max_id_length: int = 255
    max_batch_size: int = 1000

    def __post_init__(self) -> None:
        for name in ("max_content_bytes", "max_id_length", "max_batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigurationError(f"{name} must be a positive int, got {value!r}")
