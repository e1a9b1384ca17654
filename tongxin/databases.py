"""PostgreSQL for `tongxin up --postgres URL`: a database per service on one server, as
deploy/docker-compose.yml has them (registry, events, reporting)."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from tongxin.supervisor import SERVICES

DEFAULT_NAME = "tongxin"


def service_urls(url: str) -> dict[str, str]:
    """Each service's database on the server `url` names: `<name>_registry`, `<name>_events`,
    `<name>_reporting`, `<name>` being the URL's database ("tongxin" if it names none, or
    the server's own `postgres`)."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {u.render_as_string(hide_password=True)}")
    name = u.database if u.database and u.database != "postgres" else DEFAULT_NAME
    if not name.replace("_", "").isalnum():
        raise ValueError(f"a database name of letters, digits and _ please, not {name!r}")
    return {s: u.set(database=f"{name}_{s}").render_as_string(hide_password=False)
            for s in SERVICES}


async def ensure_databases(urls: dict[str, str]) -> list[str]:
    """Create each database that does not exist yet (the user needs CREATEDB, or create them
    beforehand); returns the names created."""
    import asyncpg

    created = []
    for url in urls.values():
        u = make_url(url)
        name = u.database
        assert name is not None  # service_urls names every database
        conn = await asyncpg.connect(user=u.username, password=u.password, host=u.host,
                                     port=u.port or 5432, database="postgres")
        try:
            if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                       name):
                await conn.execute(f'CREATE DATABASE "{name}"')
                created.append(name)
        finally:
            await conn.close()
    return created


def display(url: str) -> str:
    """`url` without its password, for printing."""
    return make_url(url).render_as_string(hide_password=True)
