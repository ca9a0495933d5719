"""Capabilities a backend declares missing skip tests; what the suite can
check of such a declaration, it checks."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from storage_core import Capabilities, make_storage

from ._support import Conversation, FreshIds, StorageFactory, msg

__all__ = ["DeclarationTests", "count_in_process"]

aio = pytest.mark.asyncio


def count_in_process(
    url: str, options: dict[str, Any], conv: tuple[str, str, str], timeout: float
) -> int:
    """Worker: how many messages a storage of another process sees in ``conv``."""
    return asyncio.run(_count(url, options, Conversation(*conv), timeout))


async def _count(url: str, options: dict[str, Any], conv: Conversation, timeout: float) -> int:
    storage = make_storage(url, **options)
    try:
        return len(await asyncio.wait_for(storage.fetch_chat(*conv), timeout))
    finally:
        await asyncio.wait_for(storage.close(), timeout)


class DeclarationTests:
    """A declaration that skips tests must be true where the suite can tell."""

    @aio
    async def test_declared_missing_capabilities_hold(
        self, storage_factory: StorageFactory, fresh_ids: FreshIds,
        backend_capabilities: Capabilities,
    ) -> None:
        """A backend declaring no ``shared_across_processes`` (and so no
        ``persistent`` across processes either): another process opening the
        same URL sees none of its writes. ``read_your_writes`` cannot be
        checked this way (a lagging read may happen to be fresh); the run's
        summary lists the tests each declaration skipped."""
        if backend_capabilities.shared_across_processes:
            return  # nothing declared missing that a second process could show
        c = fresh_ids.conv()
        async with storage_factory.open() as s:
            await s.save_chat_message(*c, msg("user", "written by the parent", 1))
            loop = asyncio.get_running_loop()
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                reading = loop.run_in_executor(
                    pool, count_in_process, storage_factory.url, storage_factory.options,
                    (c.user_id, c.session_id, c.agent_id), storage_factory.timeout)
                seen = await asyncio.wait_for(reading, storage_factory.timeout * 2)
        assert seen == 0, (
            "the backend declares no shared_across_processes, but another process sees "
            f"{seen} message(s) it wrote: the tests that declaration skips would run")
