"""The database helpers the hot paths share: raw reads and writes stay inside the session's transaction."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import bindparam, func, insert, select

from app.attributes.models import Tag
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign
from app.db import begin_write, fetch_rows, insert_new, make_engine, make_sessionmaker, utcnow

CORE_INSERT = (insert(Campaign).values(slug=bindparam("slug"), name="Raw", created_at=bindparam("at"))
               .returning(Campaign.__table__.c.id))
PG_INSERT = "INSERT INTO campaign (slug, name, created_at) VALUES (:slug, 'Raw', :at) RETURNING id"


async def campaigns(session, slug: str) -> int:
    return await session.scalar(select(func.count()).select_from(Campaign).where(Campaign.slug == slug)) or 0


async def behind_another_writer(sessions: Any, work: Callable[[], Awaitable[Any]]) -> Any:
    """`work`, started while another session holds the write lock and committed under it.

    On SQLite a transaction that has read can't start writing once another writer has committed since ("database
    is locked" at once, busy_timeout or not): work that reads before it writes must queue as a writer from its
    first statement, and here it must wait and then succeed.
    """
    async with sessions() as other:
        await begin_write(other)
        other.add(Campaign(slug="other-writer", name="Another writer"))
        await other.flush()
        task = asyncio.create_task(work())
        await asyncio.sleep(0.5)  # long enough for `work` to read and reach its first write
        await other.commit()
    return await task


class TestWriters:
    async def test_creating_a_campaign_waits_behind_another_writer(self, empty_db_url):
        engine = make_engine(empty_db_url)
        sessions = make_sessionmaker(engine)
        try:
            async def create() -> Campaign:
                async with sessions() as session:
                    return await campaign_service.create_campaign(session, "queued", "Queued")

            assert (await behind_another_writer(sessions, create)).slug == "queued"
            async with sessions() as session:
                assert await campaigns(session, "queued") == await campaigns(session, "other-writer") == 1
        finally:
            await engine.dispose()


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


async def test_insert_new_leaves_what_a_unique_key_holds(session):
    """Rows another writer stored meanwhile (a tag declared, a person tagged) are left as they are; the rest go
    in, and nothing fails."""
    campaign_id = await session.scalar(select(Campaign.id).where(Campaign.slug == "cambridge"))
    first = {"campaign_id": campaign_id, "name": "yard_sign", "created_at": utcnow()}
    await insert_new(session, Tag.__table__, [first])
    await insert_new(session, Tag.__table__, [{**first, "created_at": utcnow()},
                                              {**first, "name": "donor"}])
    await insert_new(session, Tag.__table__, [])
    names = (await session.execute(select(Tag.name, Tag.created_at).where(Tag.campaign_id == campaign_id)
                                   .order_by(Tag.name))).all()
    assert [n for n, _ in names] == ["donor", "yard_sign"]
    assert names[1][1] == first["created_at"], "the row first stored stands"
