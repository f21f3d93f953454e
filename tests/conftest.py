"""Fixtures: every test runs on SQLite and on PostgreSQL, against databases migrated with Alembic.

Loading Cambridge takes seconds, so it is done once per backend into a template database; each test
that needs it gets its own copy (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL).
"""

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from alembic import command
from app.cli import alembic_config
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from tests import factories

SECRET = factories.SECRET
PG_URL = os.environ.get("DOORSTEP_TEST_PG_URL")


class Databases:
    """Creates and drops this run's databases on one backend."""

    def __init__(self, backend: str, folder: Path) -> None:
        self.backend = backend
        self.folder = folder
        self.made: list[str] = []

    def _pg_dsn(self, name: str) -> str:
        assert PG_URL
        return make_url(PG_URL).set(drivername="postgresql", database=name).render_as_string(hide_password=False)

    async def create(self, *, template: str | None = None) -> str:
        name = f"doorstep_test_{uuid.uuid4().hex[:12]}"
        if self.backend == "sqlite":
            path = self.folder / f"{name}.db"
            if template:
                shutil.copyfile(make_url(template).database or "", path)
            self.made.append(str(path))
            return f"sqlite+aiosqlite:///{path}"
        assert PG_URL
        admin = await asyncpg.connect(self._pg_dsn(make_url(PG_URL).database or "postgres"))
        try:
            clause = f' TEMPLATE "{make_url(template).database}"' if template else ""
            await admin.execute(f'CREATE DATABASE "{name}"{clause}')
        finally:
            await admin.close()
        self.made.append(name)
        return make_url(PG_URL).set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False)

    async def drop(self, url: str) -> None:
        if self.backend == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(f"{make_url(url).database}{suffix}").unlink(missing_ok=True)  # noqa: ASYNC240
            return
        admin = await asyncpg.connect(self._pg_dsn(make_url(PG_URL).database or "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
        finally:
            await admin.close()

    async def drop_all(self) -> None:
        if self.backend == "postgresql":
            for name in self.made:
                await self.drop(f"postgresql+asyncpg:///{name}")


async def upgrade(url: str, revision: str = "head") -> None:
    # Alembic's env runs its own event loop, so it goes to a thread.
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_URL:
        pytest.skip("DOORSTEP_TEST_PG_URL is not set: the PostgreSQL leg needs it (make test sets it)")
    return request.param


@pytest.fixture(scope="session")
async def databases(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Databases]:
    dbs = Databases(backend, tmp_path_factory.mktemp(f"db-{backend}"))
    yield dbs
    await dbs.drop_all()


@pytest.fixture(scope="session")
async def empty_template(databases: Databases) -> str:
    """A database migrated to head and holding nothing."""
    url = await databases.create()
    await upgrade(url)
    return url


@pytest.fixture(scope="session")
async def world_template(databases: Databases, empty_template: str) -> tuple[str, factories.World]:
    """Cambridge loaded (precincts, addresses, synthetic people), a small foreign campaign, users and keys."""
    url = await databases.create(template=empty_template)
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        world = await factories.build_world(session)
    await engine.dispose()
    return url, world


@pytest.fixture(scope="session")
async def cut_template(databases: Databases, world_template: tuple[str, factories.World]) -> tuple[str, dict]:
    """The world with all of Cambridge cut into turfs of about 50 doors; the cut's report beside it.

    Tests that only read use its URL as it is; tests that change it take `cut_db_url`, a copy.
    """
    url = await databases.create(template=world_template[0])
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as session:
        report = await factories.cut_city(session)
    await engine.dispose()
    return url, report


@pytest.fixture
async def cut_db_url(databases: Databases, cut_template: tuple[str, dict]) -> AsyncIterator[str]:
    url = await databases.create(template=cut_template[0])
    yield url
    await databases.drop(url)


@pytest.fixture
async def cut_client(cut_db_url: str) -> AsyncIterator[AsyncClient]:
    async with app_client(cut_db_url) as c:
        yield c


@pytest.fixture
async def cut_session(cut_db_url: str) -> AsyncIterator[AsyncSession]:
    async with db_session(cut_db_url) as s:
        yield s


@asynccontextmanager
async def db_session(url: str) -> AsyncIterator[AsyncSession]:
    """A session on the database at `url`, to check rows behind the API."""
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        yield s
    await engine.dispose()


@asynccontextmanager
async def app_client(url: str, **settings: object) -> AsyncIterator[AsyncClient]:
    """An HTTP client on the app, served from the database at `url`."""
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None, **settings))
    async with app.router.lifespan_context(app), AsyncClient(transport=ASGITransport(app=app),
                                                             base_url="http://test") as c:
        yield c


@pytest.fixture
async def db_url(databases: Databases, world_template: tuple[str, factories.World]) -> AsyncIterator[str]:
    """A fresh copy of the loaded world, for a test to change as it likes."""
    url = await databases.create(template=world_template[0])
    yield url
    await databases.drop(url)


@pytest.fixture
async def empty_db_url(databases: Databases, empty_template: str) -> AsyncIterator[str]:
    """A fresh migrated database with nothing in it."""
    url = await databases.create(template=empty_template)
    yield url
    await databases.drop(url)


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, jwt_secret=SECRET, _env_file=None)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[AsyncClient]:
    async with app_client(settings.database_url) as c:
        yield c


@pytest.fixture
async def session(db_url: str) -> AsyncIterator[AsyncSession]:
    """A session on the test's database, to check rows behind the API."""
    async with db_session(db_url) as s:
        yield s


@pytest.fixture
def world(world_template: tuple[str, factories.World]) -> factories.World:
    return world_template[1]


@pytest.fixture
def data_dir() -> Path:
    return factories.DATA
