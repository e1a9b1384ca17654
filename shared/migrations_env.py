"""The body of every service's Alembic `env.py`: async engine, optional PostgreSQL schema."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from shared.db import make_engine


def run(target_metadata: MetaData) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    schema = config.attributes.get("schema") or None

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata,
                          version_table_schema=schema, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()

    async def main() -> None:
        assert url is not None  # set by shared.db.alembic_config
        engine = make_engine(url, schema)
        async with engine.connect() as conn:
            await conn.run_sync(do_run)
            await conn.commit()
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(main())
