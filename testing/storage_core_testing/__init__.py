"""Real servers for the tests, the fault suite and the benchmarks of storage_core.

Not part of any backend's distribution: ``pip install storage-core-libsql``
installs no test launcher. The workspace's test environments install this
distribution (``storage-core-testing``)::

    from storage_core_testing import Sqld, find_sqld
"""

from __future__ import annotations

from .sqld import CACHED_SQLD, START_TIMEOUT, Sqld, SqldUnavailable, find_sqld, free_port

__all__ = ["CACHED_SQLD", "START_TIMEOUT", "Sqld", "SqldUnavailable", "find_sqld", "free_port"]
