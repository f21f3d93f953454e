"""The `doorstep` command line against the test's database: one end-to-end flow and `db upgrade` on a database
nothing has touched, each command a process of its own as a user runs it; the bad inputs in this process
(tests/cli.py), through the same entry point.
"""

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from app.addresses.models import Person
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.main import create_app
from app.migrations import alembic_config
from app.models import metadata
from tests.cli import Ran, doorstep, ok, one_json_object
from tests.conftest import Databases
from tests.factories import DATA, SECRET

PRECINCTS = DATA / "precincts.geojson"
ADDRESSES = DATA / "addresses.csv"
ADDRESS_ROWS = 25336
# Addresses just outside every precinct (the city line, slivers between precincts): placed in the nearest.
SNAPPED = 33


async def row_counts(url: str) -> dict[str, int]:
    """Rows in every table: what a refused command must leave as it was."""
    engine = make_engine(url)
    try:
        async with make_sessionmaker(engine)() as session:
            return {t.name: await session.scalar(select(func.count()).select_from(t)) for t in metadata.sorted_tables}
    finally:
        await engine.dispose()


@asynccontextmanager
async def api(url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The ASGI app on the same database, as a client sees it."""
    app = create_app(Settings(database_url=url, jwt_secret=SECRET, _env_file=None))
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                                   base_url="http://test") as client:
        yield client


async def test_a_campaign_from_nothing(empty_db_url: str, tmp_path: Path) -> None:
    """Create a campaign, import Cambridge twice, make up people, add a user who then logs in over HTTP: each
    command the console script in a process of its own, as a user runs it."""

    async def run(*args: str | Path, stdin: str = "") -> Ran:
        return await doorstep(empty_db_url, tmp_path, *args, stdin=stdin, process=True)

    ok(await run("campaign", "create", "cam", "--name", "Cambridge"))

    report = one_json_object(await run("import", "precincts", PRECINCTS, "--name-field", "name", "--campaign", "cam",
                                       "--json"))
    assert (report["kind"], report["read"], report["created"], report["updated"], report["rejected"]) == (
        "precincts", 33, 33, 0, 0), report

    addresses = ("import", "addresses", ADDRESSES, "--campaign", "cam", "--json")
    first = one_json_object(await run(*addresses))
    assert {k: first[k] for k in ("read", "created", "updated", "snapped", "rejected")} == {
        "read": ADDRESS_ROWS, "created": ADDRESS_ROWS, "updated": 0, "snapped": SNAPPED, "rejected": 0}, first
    again = one_json_object(await run(*addresses))
    assert {k: again[k] for k in ("read", "created", "updated", "unchanged", "rejected")} == {
        "read": ADDRESS_ROWS, "created": 0, "updated": 0, "unchanged": ADDRESS_ROWS, "rejected": 0}, again

    demo = ok(await run("demo-data", "--campaign", "cam"))
    assert "SYNTHETIC" in demo.out and "not a voter file" in demo.out, demo
    made = re.search(r"created (\d+)", demo.out)
    assert made and int(made[1]) > ADDRESS_ROWS, demo  # one to four people a household

    password = "a long enough password"
    added = ok(await run("user", "add", "Pat@Example.org", "--role", "canvasser", "--campaign", "cam",
                         "--password-stdin", stdin=password + "\n"))
    assert "pat@example.org is canvasser in cam" in added.out, added

    async with api(empty_db_url) as client:
        wrong = await client.post("/v1/auth/token", data={"username": "pat@example.org", "password": "not it"})
        assert wrong.status_code == 401, wrong.text
        r = await client.post("/v1/auth/token", data={"username": "pat@example.org", "password": password})
        assert r.status_code == 200, r.text
        auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
        me = (await client.get("/v1/me", headers=auth)).json()
        assert [(m["campaign_id"], m["role"]) for m in me["memberships"]] == [("cam", "canvasser")], me
        summary = await client.get("/v1/campaigns/cam", headers=auth)
        assert summary.status_code == 200, summary.text
        assert {k: summary.json()[k] for k in ("precincts", "households", "people")} == {
            "precincts": 33, "households": ADDRESS_ROWS, "people": int(made[1])}, summary.json()

    engine = make_engine(empty_db_url)
    async with make_sessionmaker(engine)() as session:
        real = await session.scalar(select(func.count()).select_from(Person).where(Person.synthetic.is_not(True)))
    await engine.dispose()
    assert real == 0, "demo-data made people not flagged synthetic"


def bad_files(folder: Path) -> None:
    (folder / "empty.csv").write_bytes(b"")
    header = "address_id,number,street,unit,lon,lat\n"
    good_row = "PROBE-1,1,PROBE ST,,-71.1097,42.3736\n"
    (folder / "good.csv").write_text(header + good_row)
    (folder / "no_lon.csv").write_text("address_id,number,street,unit,lat\nPROBE-1,1,PROBE ST,,42.3736\n")
    # Row 1 is fine: the import must still leave nothing behind.
    (folder / "bad_lon.csv").write_text(header + good_row + "PROBE-2,2,PROBE ST,,west,42.3736\n")
    (folder / "junk.gpkg").write_bytes(os.urandom(4096))
    (folder / "torn.json").write_text('{"organizer@cambridge.example": ')


# name: (arguments, words the one line must hold). Run in the world, whose campaign `cambridge` has precincts.
BAD_INPUT: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "a missing file": (("import", "precincts", "missing.geojson", "--campaign", "cambridge"),
                       ("missing.geojson", "no such file")),
    "an empty file": (("import", "people", "empty.csv", "--campaign", "cambridge"), ("empty.csv", "empty")),
    "no lon column": (("import", "addresses", "no_lon.csv", "--campaign", "cambridge"), ("no_lon.csv", "'lon'")),
    "a lon that is no number": (("import", "addresses", "bad_lon.csv", "--campaign", "cambridge", "--json"),
                                ("bad_lon.csv", "row 2", "column 'lon'", "'west'")),
    "random bytes named .gpkg": (("import", "addresses", "junk.gpkg", "--campaign", "cambridge"),
                                 ("junk.gpkg", "no format an import reads", "accepted: CSV, GeoJSON")),
    "an unknown campaign": (("import", "addresses", "good.csv", "--campaign", "nowhere"), ("nowhere",)),
    "an email of a million dots": (("user", "add", "a@" + "." * 1_000_000, "--role", "canvasser", "--campaign",
                                     "cambridge", "--password-stdin"), ("email", "at most 320 characters")),
    "an unknown role": (("user", "add", "new@example.org", "--role", "overlord", "--campaign", "cambridge",
                         "--password-stdin"), ("--role", "overlord")),
    "a --map item without =": (("import", "addresses", "good.csv", "--campaign", "cambridge", "--map", "lon"),
                               ("--map", "'lon'")),
    # Digits to str.isdigit, yet no int; and an id past the column's range.
    "a turf named by a superscript": (("turfs", "assign", "²", "x@example.org", "--campaign", "cambridge"),
                                      ("no active turf", "'²'")),
    "a turf id past any": (("turfs", "assign", "99999999999", "x@example.org", "--campaign", "cambridge"),
                           ("no active turf", "99999999999")),
    "torn demo credentials": (("demo", "--credentials", "torn.json"), ("torn.json", "not the JSON")),
}


async def test_bad_input_gets_one_line_and_exit_code_2(db_url: str, tmp_path: Path) -> None:
    """Each: exit code 2, one line on stderr naming the fault, no traceback, nothing on stdout, no row written."""
    bad_files(tmp_path)
    before = await row_counts(db_url)
    runs = [await doorstep(db_url, tmp_path, *args, stdin="a long enough password\n")
            for args, _ in BAD_INPUT.values()]
    failures = []
    for (name, (_, words)), ran in zip(BAD_INPUT.items(), runs, strict=True):
        wrong = []
        if ran.code != 2:
            wrong.append(f"exit code {ran.code}, expected 2")
        if "Traceback" in ran.err:
            wrong.append("a traceback")
        if len(ran.err.splitlines()) != 1 or not ran.err.startswith("doorstep: "):
            wrong.append(f"{len(ran.err.splitlines())} lines on stderr, expected one starting 'doorstep: '")
        wrong += [f"the message lacks {w!r}" for w in words if w not in ran.err]
        if ran.out:
            wrong.append("output on stdout")
        if wrong:
            failures.append(f"{name}: {'; '.join(wrong)}\n  {ran}")
    after = await row_counts(db_url)
    if after != before:
        failures.append(f"rows left behind: {({t: after[t] - before[t] for t in after if after[t] != before[t]})}")
    if failures:
        pytest.fail(f"{len(failures)} of {len(BAD_INPUT)} bad inputs handled wrongly:\n" + "\n".join(failures))


async def test_demo_makes_an_admin_and_prints_every_login(cut_db_url: str, tmp_path: Path) -> None:
    """On the loaded city `doorstep demo` adds what is missing and three users, prints each login and saves the
    passwords; a second run keeps them. The admin's login opens the campaign as its admin."""
    first = ok(await doorstep(cut_db_url, tmp_path, "demo", "--credentials", "logins.json"))
    logins = re.findall(r"^  (\w+) +(\S+@cambridge\.example)  password: (\S+)$", first.out, re.M)
    printed = {role: (email, password) for role, email, password in logins}
    assert sorted(printed) == ["admin", "canvasser", "organizer"], first
    saved = json.loads((tmp_path / "logins.json").read_text())
    assert saved == {email: password for email, password in printed.values()}
    again = ok(await doorstep(cut_db_url, tmp_path, "demo", "--credentials", "logins.json"))
    assert "Reusing campaign cambridge" in again.out and json.loads((tmp_path / "logins.json").read_text()) == saved
    email, password = printed["admin"]
    async with api(cut_db_url) as client:
        r = await client.post("/v1/auth/token", data={"username": email, "password": password})
        assert r.status_code == 200, r.text
        me = (await client.get("/v1/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"})).json()
        assert [(m["campaign_id"], m["role"]) for m in me["memberships"]] == [("cambridge", "admin")], me


async def test_serving_without_a_secret_is_one_line_and_exit_2(empty_db_url: str, tmp_path: Path) -> None:
    # An address no interface has: were the secret not checked first, uvicorn would fail to bind, not serve.
    ran = await doorstep(empty_db_url, tmp_path, "serve", "--host", "192.0.2.1", "--port", "1", secret=False)
    assert ran.code == 2 and ran.out == "", ran
    assert ran.err == "doorstep: DOORSTEP_JWT_SECRET is not set: run `doorstep init` to write one into .env\n", ran


# The database's, the server's and the geometry's libraries (pydantic is typer's own: its help of a command uses it).
HEAVY = ("sqlalchemy", "sqlmodel", "alembic", "pandas", "geopandas", "numpy", "shapely", "fastapi", "httpx")


@pytest.mark.parametrize("args", [("--help",), ("import", "addresses", "--help"), ("user", "add", "--help")])
def test_help_imports_nothing_of_the_database_or_the_server(args: tuple[str, ...]) -> None:
    """`--help` answers at once: each command imports what it runs when it runs, so help loads none of it."""
    probe = ("import sys\nfrom app.cli import main\n"
             f"sys.argv = ['doorstep', *{list(args)!r}]\n"
             "try:\n    main()\nexcept SystemExit as exc:\n    code = exc.code\n"
             f"print(code, sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stderr.strip() == "0 []", done.stderr
    assert done.stdout.startswith("Usage: doorstep"), done.stdout


def command_paths(command: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the words that name it."""
    paths = [path]
    for name, sub in getattr(command, "commands", {}).items():
        paths += command_paths(sub, (*path, name))
    return paths


async def test_every_help_shows_placeholders_and_whole_summaries(tmp_path: Path) -> None:
    """`--help` of every command: its options' values have names (SLUG, FILE, FIELD=COLUMN), not types (`<str>`),
    and no summary in a list of commands is cut short with "..."."""
    import typer

    from app.cli import cli

    paths = command_paths(typer.main.get_command(cli))
    assert len(paths) > 20, paths
    for path in paths:
        ran = ok(await doorstep("sqlite+aiosqlite:///unused.db", tmp_path, *path, "--help"))
        options = ran.out.partition("Options:")[2].partition("Commands:")
        assert not re.search(r"<(str|int|float|path|list\[.*?\]|int range)>", options[0]), ran
        assert "..." not in options[2], ran


def test_make_demo_installs_only_what_serving_needs() -> None:
    """`make demo` installs the package alone; the test and bench extras come with `make test` (dry runs)."""
    def installs(target: str) -> list[str]:
        done = subprocess.run(["make", "-n", "-B", target], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).parents[1], check=True)
        return [line.split(" install ", 1)[1] for line in done.stdout.splitlines() if " -m pip install " in line]

    assert installs("demo") == ["--quiet --upgrade pip", "--quiet -e ."]
    # The client generator goes into a venv of its own (it pins an older typer than the CLI's).
    assert installs("test") == ["--quiet --upgrade pip", "--quiet -e .", "--quiet -e '.[dev]'",
                                "--quiet -r clients/generator.txt"]


async def test_db_upgrade_on_a_fresh_database(databases: Databases, tmp_path: Path) -> None:
    """`db upgrade` builds every table in a database nothing has touched (on SQLite, a file not yet made)."""
    url = await databases.create()
    try:
        # The plain scheme, as an operator would write it; the settings pick the async driver.
        plain = make_url(url).set(drivername=make_url(url).get_backend_name()).render_as_string(hide_password=False)
        ran = ok(await doorstep(plain, tmp_path, "db", "upgrade", process=True))
        assert "Database at head." in ran.out, ran
        head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
        engine = make_engine(url)
        async with engine.connect() as connection:
            tables = set(await connection.run_sync(lambda c: inspect(c).get_table_names()))
            version = (await connection.execute(text("SELECT version_num FROM alembic_version"))).scalar_one()
        await engine.dispose()
        assert {t.name for t in metadata.sorted_tables} <= tables
        assert version == head
    finally:
        await databases.drop(url)


# A database of its own: the CLI runs in processes of its own.
pytestmark = pytest.mark.own_database
