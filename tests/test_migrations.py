"""One Alembic history for both databases, and models that match it."""

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from alembic import command
from app.cli import alembic_config
from app.db import make_engine
from app.models import metadata
from tests.conftest import upgrade


async def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    await engine.dispose()
    return names


class TestMigrations:
    async def test_empty_database_upgrades_to_head_and_back(self, databases):
        url = await databases.create()
        await upgrade(url)
        assert await table_names(url) == set(metadata.tables) | {"alembic_version"}
        await asyncio.to_thread(command.downgrade, alembic_config(url), "base")
        assert await table_names(url) == {"alembic_version"}
        await upgrade(url)
        assert set(metadata.tables) <= await table_names(url)
        await databases.drop(url)

    async def test_models_and_migrations_do_not_drift(self, empty_db_url):
        engine = make_engine(empty_db_url)
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), metadata))
        await engine.dispose()
        assert diff == [], f"models and migrations differ; run alembic revision --autogenerate: {diff}"
