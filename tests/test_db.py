"""The database helpers the hot paths share: raw reads and writes stay inside the session's transaction."""

import pytest
from sqlalchemy import bindparam, func, insert, select

from app.campaigns.models import Campaign
from app.db import fetch_rows, make_engine, make_sessionmaker, utcnow

CORE_INSERT = (insert(Campaign).values(slug=bindparam("slug"), name="Raw", created_at=bindparam("at"))
               .returning(Campaign.__table__.c.id))
PG_INSERT = "INSERT INTO campaign (slug, name, created_at) VALUES (:slug, 'Raw', :at) RETURNING id"


async def campaigns(session, slug: str) -> int:
    return await session.scalar(select(func.count()).select_from(Campaign).where(Campaign.slug == slug)) or 0


class TestFetchRows:
    async def test_a_raw_statement_first_in_a_session_is_inside_its_transaction(self, empty_db_url):
        """On PostgreSQL the rows come straight through asyncpg, which SQLAlchemy hasn't sent BEGIN on yet: the
        write must still be the session's, gone with its rollback and kept by its commit."""
        engine = make_engine(empty_db_url)
        sessions = make_sessionmaker(engine)
        try:
            async with sessions() as session:
                rows = await fetch_rows(session, CORE_INSERT, PG_INSERT, {"slug": "undone", "at": utcnow()})
                assert len(rows) == 1 and rows[0][0] is not None
                async with sessions() as other:
                    assert await campaigns(other, "undone") == 0  # not committed: nobody else sees it
                await session.rollback()
                assert await campaigns(session, "undone") == 0
            async with sessions() as session:
                await fetch_rows(session, CORE_INSERT, PG_INSERT, {"slug": "kept", "at": utcnow()})
                await session.commit()
            async with sessions() as other:
                assert await campaigns(other, "kept") == 1
        finally:
            await engine.dispose()


# A database of its own: engines of its own, several connections.
pytestmark = pytest.mark.own_database
