"""Fixtures: every test runs on SQLite and on PostgreSQL, against databases migrated with Alembic.

Loading Cambridge and cutting it into turfs take seconds, so each is done once per backend into a template
database. Tests share one copy of each, every test inside a transaction rolled back at its end: the app's
sessions and the test's own are savepoints on that one connection (`app_client` and `db_session` find it by
the URL the fixtures hand out). A test that needs more than one connection (a server in another process,
concurrent requests, background work, LISTEN/NOTIFY, migrations) is marked `own_database` and gets a copy of
its own (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL).
"""

import asyncio
import os
import shutil
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.pool import NullPool

from alembic import command
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrations import alembic_config
from tests import contract, factories

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

    async def compact(self, url: str) -> None:
        """Rewrite a template without the dead rows its building left, its statistics taken: copies of it are
        smaller (a cut city's copy takes half the time) and plan as a loaded database would."""
        name = make_url(url).database or ""
        if self.backend == "sqlite":
            with closing(sqlite3.connect(name)) as db:
                db.execute("VACUUM")
                db.execute("ANALYZE")
            return
        connection = await asyncpg.connect(self._pg_dsn(name))
        try:
            await connection.execute("VACUUM (FULL, ANALYZE)")
        finally:
            await connection.close()

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


@pytest.hookimpl(tryfirst=True)  # before xdist's own, which reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist (`--dist loadgroup`, as make test runs), each backend's tests go to one worker, which builds
    that backend's templates; but the access matrix, a third of a leg, runs on the other backend's worker (where
    its marker doesn't keep it on its own), so the two finish together."""
    other = {"sqlite": "postgresql", "postgresql": "sqlite"}
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "backend" not in callspec.params:
            continue
        backend = callspec.params["backend"]
        matrix = item.get_closest_marker("access_matrix")
        moves = matrix is not None and backend not in matrix.kwargs.get("stays_on", ())
        item.add_marker(pytest.mark.xdist_group(other[backend] if moves else backend))



@pytest.fixture(autouse=True, scope="session")
def answers_held_to_the_contract() -> Iterator[None]:
    """Every answer the app gives through httpx's ASGI transport is checked against the committed contract."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ASGITransport, "handle_async_request", contract.checked(ASGITransport.handle_async_request))
        yield

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
    await databases.compact(url)
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
    await databases.compact(url)
    return url, report


@pytest.fixture(scope="session")
async def world_db(databases: Databases, world_template: tuple[str, factories.World]) -> str:
    """The copy of the world that tests share, each in a transaction of its own, rolled back."""
    return await databases.create(template=world_template[0])


@pytest.fixture(scope="session")
async def cut_db(databases: Databases, cut_template: tuple[str, dict]) -> str:
    """The copy of the cut city that tests share, each in a transaction of its own, rolled back."""
    return await databases.create(template=cut_template[0])


# The connection of the running test's rolled-back transaction, by the URL its fixtures handed out (a process
# runs one test at a time).
BOUND: dict[str, AsyncConnection] = {}


async def _committed(connection: AsyncConnection) -> object:
    """What moves when the connection's transaction ends: PostgreSQL's transaction id (taken once, it stays);
    on SQLite whether the driver has a transaction open (a COMMIT sent raw ends it) and the file's data_version,
    which another connection's commit moves too. PostgreSQL has no such per-database mark (transaction ids are
    the cluster's, and other workers' databases move them), so there only a COMMIT on this connection shows."""
    if connection.dialect.name == "postgresql":
        return await connection.scalar(text("SELECT txid_current()"))
    return ((await connection.get_raw_connection()).driver_connection.in_transaction,
            await connection.scalar(text("PRAGMA data_version")))


@asynccontextmanager
async def rolled_back(url: str) -> AsyncIterator[str]:
    """`url`, for the test's app and sessions to share one connection in a transaction rolled back at the end."""
    engine = make_engine(url, poolclass=NullPool)
    async with engine.connect() as connection:
        transaction = await connection.begin()
        began = await _committed(connection)
        BOUND[url] = connection
        try:
            yield url
        finally:
            del BOUND[url]
        # A COMMIT sent raw, or (caught on SQLite) another connection such as a process the test ran, would have
        # changed the shared database: such a test needs `own_database`.
        assert await _committed(connection) == began, "the shared database changed outside the test's transaction"
        await transaction.rollback()
    await engine.dispose()


def _own(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("own_database") is not None


@asynccontextmanager
async def _database(request: pytest.FixtureRequest, databases: Databases, template: str,
                    shared: str) -> AsyncIterator[str]:
    """A copy of `template` for a test marked own_database; the shared database `shared`, in a rolled-back
    transaction, for any other."""
    if _own(request):
        url = await databases.create(template=template)
        try:
            yield url
        finally:
            await databases.drop(url)
    else:
        async with rolled_back(shared) as url:
            yield url


@pytest.fixture
async def cut_db_url(request: pytest.FixtureRequest, databases: Databases, cut_template: tuple[str, dict],
                     cut_db: str) -> AsyncIterator[str]:
    async with _database(request, databases, cut_template[0], cut_db) as url:
        yield url


@pytest.fixture
async def cut_client(cut_db_url: str) -> AsyncIterator[AsyncClient]:
    async with app_client(cut_db_url) as c:
        yield c


@pytest.fixture
async def cut_session(cut_db_url: str) -> AsyncIterator[AsyncSession]:
    async with db_session(cut_db_url) as s:
        yield s


class RolledBackSession(AsyncSession):
    """The test's own session in a rolled-back transaction. Its transactions are savepoints, as the app's are,
    but its rollback releases its savepoint and forgets what it loaded: tests roll back to see the app's writes,
    and rolling back to the savepoint would undo those the app made since."""

    async def rollback(self) -> None:
        transaction = self.sync_session.get_transaction()
        if transaction is None or not transaction.is_active:
            await super().rollback()
            return
        await self.commit()
        self.expire_all()


@asynccontextmanager
async def db_session(url: str) -> AsyncIterator[AsyncSession]:
    """A session on the database at `url`, to check rows behind the API."""
    if url in BOUND:
        async with RolledBackSession(BOUND[url], expire_on_commit=False, join_transaction_mode="create_savepoint") as s:
            yield s
        return
    engine = make_engine(url)
    async with make_sessionmaker(engine)() as s:
        yield s
    await engine.dispose()


@asynccontextmanager
async def running_app(url: str, **settings: object) -> AsyncIterator[FastAPI]:
    """The app, started, served from the database at `url` (on the test's rolled-back transaction, if the URL is
    a shared database's)."""
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None, **settings),
                     connection=BOUND.get(url))
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def app_client(url: str, **settings: object) -> AsyncIterator[AsyncClient]:
    """An HTTP client on the app (`running_app`)."""
    async with running_app(url, **settings) as app, AsyncClient(transport=ASGITransport(app=app),
                                                                 base_url="http://test") as c:
        yield c


@pytest.fixture
async def db_url(request: pytest.FixtureRequest, databases: Databases, world_template: tuple[str, factories.World],
                 world_db: str) -> AsyncIterator[str]:
    """The loaded world, for a test to change as it likes."""
    async with _database(request, databases, world_template[0], world_db) as url:
        yield url


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
