"""The `doorstep` command line, for organizers and operators. Bad input gets one line and exit code 2."""

import asyncio
import json
import secrets
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

import app.models  # noqa: F401  every table, so foreign keys across domains resolve whatever a command loads
from app import csvsafe
from app.auth import service as auth_service
from app.auth.models import Scope
from app.campaigns import service as campaign_service
from app.campaigns.models import Campaign, Role, User
from app.config import Settings
from app.db import make_engine, make_sessionmaker
from app.errors import AppError
from app.errors import NotFound as NotFoundError
from app.ingest import REJECTION_COLUMNS, ImportReport, parse_map

T = TypeVar("T")
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

cli = typer.Typer(help="Doorstep: the backend for door-to-door canvassing.", no_args_is_help=True,
                  pretty_exceptions_enable=False, rich_markup_mode=None, add_completion=False)
db_cli = typer.Typer(help="The database.", no_args_is_help=True)
campaign_cli = typer.Typer(help="Campaigns.", no_args_is_help=True)
user_cli = typer.Typer(help="Users and their roles.", no_args_is_help=True)
key_cli = typer.Typer(help="API keys for third-party tools.", no_args_is_help=True)
import_cli = typer.Typer(help="Load precincts, addresses, people and streets.", no_args_is_help=True)
turf_cli = typer.Typer(help="Turfs.", no_args_is_help=True)
event_cli = typer.Typer(help="Canvass launches.", no_args_is_help=True)
progress_cli = typer.Typer(help="Door-knock progress: the counters sync keeps.", no_args_is_help=True)
for sub, name in ((db_cli, "db"), (campaign_cli, "campaign"), (user_cli, "user"), (key_cli, "apikey"),
                  (import_cli, "import"), (turf_cli, "turfs"), (event_cli, "events"), (progress_cli, "progress")):
    cli.add_typer(sub, name=name)

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "data" / "cambridge"
CampaignOpt = Annotated[str, typer.Option("--campaign", "-c", help="The campaign's slug.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as one JSON object on stdout.")]
MapOpt = Annotated[list[str] | None, typer.Option("--map", help="FIELD=COLUMN[+COLUMN...]; repeat per field.")]
RejectionsOpt = Annotated[Path | None, typer.Option("--rejections", help=(
    "Write every rejected row to this CSV (--json and the HTTP answer list the first 1,000)."))]


def run(work: Callable[[AsyncSession], Awaitable[T]], settings: Settings | None = None) -> T:
    """Run `work` with a session on the configured database."""
    async def main() -> T:
        engine = make_engine((settings or Settings()).database_url)
        try:
            async with make_sessionmaker(engine)() as session:
                return await work(session)
        finally:
            await engine.dispose()
    return asyncio.run(main())


async def _campaign(session: AsyncSession, slug: str) -> Campaign:
    return await campaign_service.get_campaign(session, slug)


@contextmanager
def progress_bar(enabled: bool = True) -> Iterator[Callable[[str, int, int], None]]:
    """A progress callback drawing a bar on stderr (nothing when stderr is no terminal and not asked for)."""
    with Progress(TextColumn("{task.description:<11}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=err, transient=True, disable=not enabled) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
        yield update


def write_rejections(report: ImportReport, path: Path) -> None:
    """Every rejected row as CSV, formula-safe (a row's id or reason may come from anyone's file)."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csvsafe.DictWriter(f, REJECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(r.__dict__ for r in report.rejected)


def show_report(report: ImportReport, as_json: bool, rejections: Path | None = None) -> None:
    if rejections is not None:
        write_rejections(report, rejections)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in report.extra.items())
    out.print(f"{report.kind} from {report.file}: read {report.read}, created {report.created}, "
              f"updated {report.updated}, unchanged {report.unchanged}, snapped {report.snapped}, "
              f"rejected {len(report.rejected)}{extra}", highlight=False)
    shown = report.rejected[:25]
    for r in shown:
        where = f"row {r.row}" + (f", column {r.column}" if r.column else "")
        out.print(f"  rejected: {r.file} {where}: {r.reason}" + (f" ({r.id})" if r.id else ""), highlight=False)
    if len(report.rejected) > len(shown):
        out.print(f"  ... and {len(report.rejected) - len(shown)} more (--rejections FILE.csv writes them all)")


@cli.command()
def init(env_file: Annotated[Path, typer.Option(help="Where to write the settings.")] = Path(".env")) -> None:
    """Write a local settings file with a new random token secret, unless one is there."""
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    if any(line.startswith("DOORSTEP_JWT_SECRET=") for line in lines):
        out.print(f"{env_file} already has a secret; left as it is.")
        return
    lines.append(f"DOORSTEP_JWT_SECRET={secrets.token_urlsafe(48)}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    out.print(f"Wrote a new secret to {env_file}.")


def alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    ini = Path(__file__).resolve().parent.parent / "alembic.ini"
    config = Config(str(ini))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


@db_cli.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Migrate the database (DOORSTEP_DATABASE_URL) up to a revision, by default the newest."""
    from alembic import command

    command.upgrade(alembic_config(Settings().database_url), revision)
    out.print(f"Database at {revision}.")


@db_cli.command("downgrade")
def db_downgrade(revision: Annotated[str, typer.Argument()]) -> None:
    """Migrate the database down to a revision (`base` empties it)."""
    from alembic import command

    command.downgrade(alembic_config(Settings().database_url), revision)
    out.print(f"Database at {revision}.")


@campaign_cli.command("create")
def campaign_create(slug: str, name: Annotated[str, typer.Option(help="The campaign's name.")]) -> None:
    """Create a campaign."""
    campaign = run(lambda s: campaign_service.create_campaign(s, slug, name))
    out.print(f"Created campaign {campaign.slug} ({campaign.name}).")


@campaign_cli.command("list")
def campaign_list() -> None:
    """List the campaigns."""
    for c in run(campaign_service.list_campaigns):
        out.print(f"{c.slug}\t{c.name}", highlight=False)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_cli.command("add")
def user_add(email: str, role: Annotated[Role, typer.Option(help="The user's role in the campaign.")],
             campaign: CampaignOpt, name: Annotated[str | None, typer.Option(help="Display name.")] = None,
             password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                          help="Read the password from stdin.")] = False) -> None:
    """Add a user to a campaign with a role (an existing user keeps their password unless given one)."""
    async def work(session: AsyncSession) -> str:
        found = await campaign_service.find_user(session, email)
        password = read_password(password_stdin) if found is None or password_stdin else None
        user, membership = await campaign_service.add_member(session, await _campaign(session, campaign), email,
                                                             role, name=name, password=password)
        return f"{user.email} is {membership.role} in {campaign}."
    out.print(run(work), highlight=False)


@user_cli.command("remove")
def user_remove(email: str, campaign: CampaignOpt) -> None:
    """Take a user out of a campaign: their turfs there go back, and every login of theirs ends."""
    from app.organizing import service as organizing

    async def work(session: AsyncSession) -> str:
        c = await _campaign(session, campaign)
        user = await campaign_service.find_user(session, email)
        if user is None or c.id is None:
            raise NotFoundError(f"no user {email.strip().lower()}")
        await organizing.remove_member(session, c.id, user.id, by=None)
        return f"{user.email} is no longer in {campaign}; their logins are ended."
    out.print(run(work), highlight=False)


@user_cli.command("disable")
def user_disable(email: str) -> None:
    """Disable a user everywhere: they can't log in, and every token they hold stops at once."""
    user = run(lambda s: campaign_service.set_disabled(s, email, disabled=True))
    out.print(f"{user.email} is disabled; their logins are ended.", highlight=False)


@user_cli.command("enable")
def user_enable(email: str) -> None:
    """Let a disabled user log in again (with their password; their old tokens stay ended)."""
    user = run(lambda s: campaign_service.set_disabled(s, email, disabled=False))
    out.print(f"{user.email} may log in again.", highlight=False)


@key_cli.command("create")
def key_create(campaign: CampaignOpt, name: Annotated[str, typer.Option(help="Who the key is for.")],
               scope: Annotated[list[Scope], typer.Option(help="A scope; repeat for several.")]) -> None:
    """Make an API key; it is printed once and can't be shown again."""
    async def work(session: AsyncSession) -> str:
        c = await _campaign(session, campaign)
        assert c.id is not None
        _, key = await auth_service.create_api_key(session, c.id, name=name, scopes=scope, created_by=None)
        return key
    out.print(run(work), highlight=False)


@key_cli.command("list")
def key_list(campaign: CampaignOpt) -> None:
    """List a campaign's API keys (not their secrets)."""
    async def work(session: AsyncSession) -> list[Any]:
        c = await _campaign(session, campaign)
        assert c.id is not None
        return list(await auth_service.list_api_keys(session, c.id))
    for k in run(work):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        out.print(f"{k.id}\t{k.prefix}...\t{k.name}\t{k.scopes}\t{state}", highlight=False)


def _import(campaign: str, as_json: bool, work: Callable[[AsyncSession, int, Any], Awaitable[ImportReport]],
            rejections: Path | None = None) -> None:
    with progress_bar(enabled=err.is_terminal) as progress:
        async def go(session: AsyncSession) -> ImportReport:
            c = await _campaign(session, campaign)
            return await work(session, c.id or 0, progress)
        report = run(go)
    show_report(report, as_json, rejections)


@import_cli.command("precincts")
def import_precincts(file: Path, campaign: CampaignOpt, as_json: JsonOpt = False,
                     id_field: Annotated[str, typer.Option(help="The field holding the precinct id.")] = "precinct_id",
                     name_field: Annotated[str | None, typer.Option(
                         help="The field holding its name; without it the id is the name.")] = None,
                     rejections: RejectionsOpt = None) -> None:
    """Import precincts from GeoJSON, GeoPackage or a Shapefile, zipped or not (any CRS; reprojected to EPSG:4326)."""
    from app.precincts.service import import_precincts as service

    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, id_field=id_field,
                                                         name_field=name_field, progress=p), rejections)


@import_cli.command("addresses")
def import_addresses(file: Path, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                     rejections: RejectionsOpt = None) -> None:
    """Import an address file (CSV, GeoJSON, GeoPackage or zipped Shapefile): units become households, grouped
    into buildings."""
    from app.addresses.service import ADDRESS_FIELDS
    from app.addresses.service import import_addresses as service

    fields = parse_map(mapping, ADDRESS_FIELDS)
    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, mapping=fields, progress=p),
            rejections)


@import_cli.command("people")
def import_people(file: Path, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                  rejections: RejectionsOpt = None) -> None:
    """Import a voter file, linked to households by the address file's id."""
    from app.addresses.service import PEOPLE_FIELDS
    from app.addresses.service import import_people as service

    fields = parse_map(mapping, PEOPLE_FIELDS)
    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, mapping=fields, progress=p),
            rejections)


@import_cli.command("streets")
def import_streets(file: Path, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                   rejections: RejectionsOpt = None) -> None:
    """Import street centrelines (segments with node ids and address ranges); buildings are matched to them."""
    from app.streets.service import STREET_FIELDS
    from app.streets.service import import_streets as service

    fields = parse_map(mapping, STREET_FIELDS)
    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, mapping=fields, progress=p),
            rejections)


@turf_cli.command("cut")
def turfs_cut(campaign: CampaignOpt, target: Annotated[int, typer.Option(help="Doors a turf.")] = 50,
              precinct: Annotated[list[str] | None, typer.Option(help="A precinct id; repeat for several. "
                                                                      "All precincts when absent.")] = None,
              as_json: JsonOpt = False) -> None:
    """Cut precincts into turfs of about TARGET doors; held, worked and drawn turfs stay."""
    from app.turfs import cutting as turf_service

    async def go(session: AsyncSession, progress: Callable[[str, int, int], None]) -> dict[str, Any]:
        c = await _campaign(session, campaign)
        assert c.id is not None
        job = await turf_service.start_cut(session, c.id, codes=precinct, target=target, created_by="cli")
        assert job.id is not None

        async def step(code: str, done: int, total: int) -> None:
            progress("precincts", done, total)
        return await turf_service.cut_turfs(session, c.id, codes=precinct, target=target, cut_id=job.id, step=step)

    with progress_bar(enabled=err.is_terminal) as progress:
        report = run(lambda s: go(s, progress))
    if as_json:
        out.print_json(json.dumps(report))
        return
    show_quality(report)


@turf_cli.command("assign")
def turfs_assign(turf: Annotated[str, typer.Argument(help="The turf's id or name.")],
                 email: Annotated[str, typer.Argument(help="The member to give it to.")],
                 campaign: CampaignOpt) -> None:
    """Give a turf to a member of the campaign."""
    from sqlalchemy import or_, select

    from app.organizing import service as organizing
    from app.turfs.models import Turf

    async def go(session: AsyncSession) -> str:
        c = await _campaign(session, campaign)
        assert c.id is not None
        by_id = Turf.id == int(turf) if turf.isdigit() else False
        found = (await session.execute(select(Turf.id, Turf.name).where(
            Turf.campaign_id == c.id, Turf.status == "active", or_(Turf.name == turf, by_id)))).first()
        if found is None:
            raise NotFoundError(f"no active turf {turf!r} in {campaign}")
        user = await campaign_service.find_user(session, email)
        if user is None:
            raise NotFoundError(f"no user {email}")
        rows = await organizing.assign(session, c.id, found.id, [user.id], by=None)
        return f"{found.name} (turf {found.id}) is held by " + ", ".join(r.email for r in rows) + "."
    out.print(run(go), highlight=False)


@event_cli.command("list")
def events_list(campaign: CampaignOpt) -> None:
    """List a campaign's canvass launches: when, where, host, and turfs out of the pool."""
    from app.organizing import service as organizing

    async def go(session: AsyncSession) -> list[tuple[Any, dict[str, Any], str]]:
        c = await _campaign(session, campaign)
        rows = []
        for event in await organizing.list_events(session, c.id or 0, user=None, role=None):
            host = await session.get(User, event.host_id)
            rows.append((event, await organizing.event_detail(session, event), host.email if host else "?"))
        return rows

    from rich.table import Table

    table = Table(title=f"Events of {campaign}")
    for column in ("id", "title", "starts", "ends", "host", "attendees", "turfs out"):
        table.add_column(column)
    for event, detail, host in run(go):
        out_of = sum(1 for t in detail["turfs"] if t.checked_out_at)
        table.add_row(str(event.id), event.title, f"{event.starts_at:%Y-%m-%d %H:%M}", f"{event.ends_at:%H:%M}", host,
                      str(len(detail["attendees"])), f"{out_of}/{len(detail['turfs'])}")
    out.print(table)


def show_quality(report: dict[str, Any]) -> None:
    """The cut's quality as a table: overall, then each precinct."""
    from rich.table import Table

    table = Table(title=f"Turf cut, target {report['target_doors']} doors "
                        f"({report['turfs_replaced']} turfs replaced, {report['turfs_kept']} kept)")
    columns = {"turfs": "turfs", "doors_min": "min", "doors_median": "median", "doors_max": "max", "doors_cv": "CV",
               "outside_15pct": "±15%", "non_contiguous": "split up", "polsby_popper_mean": "compact",
               "split_block_share": "blocks split"}
    table.add_column("precinct")
    for header in columns.values():
        table.add_column(header, justify="right")
    for name, quality in [("all", report["overall"]), *report["precincts"].items()]:
        table.add_row(name, *("" if quality.get(c) is None else str(quality.get(c)) for c in columns))
    out.print(table)


@progress_cli.command("rebuild")
def progress_rebuild(campaign: CampaignOpt, as_json: JsonOpt = False) -> None:
    """Recompute every progress counter of a campaign from its stored knocks, in one transaction."""
    from app.sync import service as sync_service

    async def go(session: AsyncSession) -> dict[str, int]:
        c = await _campaign(session, campaign)
        return await sync_service.rebuild_progress(session, c.id or 0)

    counted = run(go)
    if as_json:
        out.print_json(json.dumps(counted))
    else:
        out.print(f"Rebuilt the counters of {campaign} from {counted['knocks']} knocks: "
                  f"{counted['doors_attempted']} doors attempted.", highlight=False)


@cli.command("demo-data")
def demo_data(campaign: CampaignOpt, seed: Annotated[int, typer.Option(help="Same seed, same people.")] = 7,
              as_json: JsonOpt = False) -> None:
    """Give every household made-up (synthetic) people: no voter file is public."""
    from app.addresses.service import make_demo_people

    with progress_bar(enabled=err.is_terminal) as progress:
        async def go(session: AsyncSession) -> dict[str, int]:
            c = await _campaign(session, campaign)
            return await make_demo_people(session, c.id or 0, seed=seed, progress=progress)
        counts = run(go)
    if as_json:
        out.print_json(json.dumps({"synthetic": True, **counts}))
    else:
        out.print(f"SYNTHETIC people (made up, seed {seed}; not a voter file): created {counts['created']}, "
                  f"updated {counts['updated']}, unchanged {counts['unchanged']}", highlight=False)


@cli.command()
def demo(data: Annotated[Path, typer.Option(help="The Cambridge sample data.")] = SAMPLE_DATA,
         credentials: Annotated[Path, typer.Option(help="Where the demo users' passwords are kept.")] = Path(
             ".doorstep-demo.json")) -> None:
    """Set up the Cambridge demo: campaign, precincts, addresses, synthetic people and two users. Idempotent."""
    from app.demo import set_up_demo

    saved: dict[str, str] = json.loads(credentials.read_text()) if credentials.exists() else {}
    with progress_bar(enabled=err.is_terminal) as progress:
        logins = run(lambda s: set_up_demo(s, data, saved, progress=progress, say=out.print))
    credentials.write_text(json.dumps(saved, indent=2) + "\n")
    credentials.chmod(0o600)
    out.print("\nDemo logins (POST /v1/auth/token, or Authorize in /docs):")
    for who in logins:
        out.print(f"  {who['role']:<10} {who['email']}  password: {who['password']}", highlight=False)


@cli.command()
def serve(host: Annotated[str, typer.Option()] = "127.0.0.1",
          port: Annotated[int, typer.Option(envvar="PORT")] = 8000,
          workers: Annotated[int, typer.Option()] = 1) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    uvicorn.run("app.main:app", host=host, port=port, workers=workers)


@cli.command()
def simulate(url: Annotated[str, typer.Option(help="The running server.")] = "http://127.0.0.1:8000",
             campaign: CampaignOpt = "cambridge",
             organizer: Annotated[str, typer.Option(help="An organizer's email: makes the phones' join code and "
                                                         "reads the server's counts.")] = "organizer@cambridge.example",
             password: Annotated[str | None, typer.Option(envvar="DOORSTEP_SIM_PASSWORD", help=(
                 "The organizer's password; by default the one `doorstep demo` saved."))] = None,
             canvassers: Annotated[int, typer.Option(min=1, max=1000, help="Phones.")] = 10,
             minutes: Annotated[int, typer.Option(min=1, max=1440, help="Shift length in phone time.")] = 60,
             seed: Annotated[int | None, typer.Option(help="Same seed, same shifts and faults.")] = None,
             as_json: JsonOpt = False) -> None:
    """Play phones against a running server: join, claim, knock offline with skewed clocks, sync over a bad
    network; what they sent and what it counted must agree (exit 1 if not). Doubles as the load test."""
    from app import simulate as sim

    options = sim.Options(url=url, campaign=campaign, organizer=organizer, password=password,
                          canvassers=canvassers, minutes=minutes, seed=seed)
    try:
        report = asyncio.run(sim.simulate(options))
    except sim.SimulationFailed as exc:
        err.print(f"doorstep: simulate: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from exc
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(sim.format_report(report), highlight=False, markup=False)
    if not report["agree"]:
        raise typer.Exit(1)


def main() -> None:
    """Entry point: one clear line and exit code 2 for bad input, never a traceback."""
    try:
        cli(standalone_mode=False)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("doorstep: aborted")
        sys.exit(1)
    except typer.TyperException as exc:
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        # With no command at all, the "error" is the help text: print it as it is.
        err.print(message if message.startswith("Usage:") else f"doorstep: {message}", highlight=False,
                  markup=False)
        sys.exit(2)
    except AppError as exc:
        err.print(f"doorstep: {exc}", highlight=False, markup=False)
        sys.exit(2)
    except ValidationError as exc:
        first = exc.errors()[0]
        err.print(f"doorstep: settings: {first['msg']}", highlight=False, markup=False)
        sys.exit(2)
    except (OperationalError, ProgrammingError) as exc:
        reason = str(exc.orig).splitlines()[0] if exc.orig else str(exc).splitlines()[0]
        err.print(f"doorstep: database error: {reason} (is the database migrated? `doorstep db upgrade`)",
                  highlight=False, markup=False)
        sys.exit(1)
    except OSError as exc:
        # Most often the database can't be reached: say so in a line; it is no bad input, so not 2.
        err.print(f"doorstep: {exc}", highlight=False, markup=False)
        sys.exit(1)
