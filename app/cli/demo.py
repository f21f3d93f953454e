"""Getting started: a settings file, the Cambridge demo, serving the API, and phones played against it."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.common import CampaignOpt, JsonOpt, err, get_campaign, out, progress_bar, run
from app.errors import Invalid

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

# No group of its own: these are `doorstep init`, `doorstep demo` and so on.
start_cli = typer.Typer()
SAMPLE_DATA = Path(__file__).resolve().parents[2] / "data" / "cambridge"


@start_cli.command()
def init(env_file: Annotated[Path, typer.Option(metavar="FILE", help="Where to write the settings.")] = Path(
        ".env")) -> None:
    """Write a settings file with a new token secret.

    A file that has a secret already is left as it is.
    """
    lines = env_file.read_text().splitlines() if env_file.exists() else []
    if any(line.startswith("DOORSTEP_JWT_SECRET=") for line in lines):
        out.print(f"{env_file} already has a secret; left as it is.")
        return
    lines.append(f"DOORSTEP_JWT_SECRET={secrets.token_urlsafe(48)}")
    env_file.write_text("\n".join(lines) + "\n")
    env_file.chmod(0o600)
    out.print(f"Wrote a new secret to {env_file}.")


@start_cli.command("demo-data")
def demo_data(campaign: CampaignOpt,
              seed: Annotated[int, typer.Option(metavar="N", help="Same seed, same people.")] = 7,
              as_json: JsonOpt = False) -> None:
    """Give every household made-up (synthetic) people.

    No voter file is public; these people are marked synthetic.
    """
    from app.addresses.service import make_demo_people

    with progress_bar(enabled=err.is_terminal) as progress:
        async def go(session: AsyncSession) -> dict[str, int]:
            c = await get_campaign(session, campaign)
            return await make_demo_people(session, c.id or 0, seed=seed, progress=progress)
        counts = run(go)
    if as_json:
        out.print_json(json.dumps({"synthetic": True, **counts}))
    else:
        out.print(f"SYNTHETIC people (made up, seed {seed}; not a voter file): created {counts['created']}, "
                  f"updated {counts['updated']}, unchanged {counts['unchanged']}", highlight=False)


@start_cli.command()
def demo(data: Annotated[Path, typer.Option(metavar="FOLDER", help="The Cambridge sample data.")] = SAMPLE_DATA,
         credentials: Annotated[Path, typer.Option(metavar="FILE",
                                                   help="Where the demo users' passwords are kept.")] = Path(
             ".doorstep-demo.json")) -> None:
    """Set up the Cambridge demo, or reuse what is there.

    The campaign, its precincts, addresses, streets, synthetic people, turfs and a survey script, and three
    users (an admin, an organizer and a canvasser), whose logins it prints.
    """
    from app.demo import set_up_demo

    try:
        saved: dict[str, str] = json.loads(credentials.read_text()) if credentials.exists() else {}
    except ValueError as exc:
        raise Invalid(f"{credentials} is not the JSON `doorstep demo` writes; move it away to start afresh",
                      field="credentials") from exc
    if not isinstance(saved, dict):
        raise Invalid(f"{credentials} is not the JSON object `doorstep demo` writes", field="credentials")
    with progress_bar(enabled=err.is_terminal) as progress:
        logins = run(lambda s: set_up_demo(s, data, saved, progress=progress, say=out.print))
    credentials.write_text(json.dumps(saved, indent=2) + "\n")
    credentials.chmod(0o600)
    out.print("\nDemo logins (POST /v1/auth/token, or Authorize in /docs):")
    for who in logins:
        out.print(f"  {who['role']:<10} {who['email']}  password: {who['password']}", highlight=False)


@start_cli.command()
def serve(host: Annotated[str, typer.Option(metavar="ADDRESS", help="The address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(envvar="PORT", metavar="PORT", help="The port to listen on.")] = 8000,
          workers: Annotated[int, typer.Option(metavar="N", help="Server processes.")] = 1) -> None:
    """Serve the API with uvicorn."""
    import uvicorn

    from app.config import Settings

    # Checked here, so a missing secret is one line and exit 2, not the app's start-up failing in uvicorn's log.
    if Settings().jwt_secret is None:
        raise Invalid("DOORSTEP_JWT_SECRET is not set: run `doorstep init` to write one into .env",
                      field="DOORSTEP_JWT_SECRET")
    uvicorn.run("app.main:app", host=host, port=port, workers=workers)


@start_cli.command()
def simulate(url: Annotated[str, typer.Option(metavar="URL", help="The running server.")] = "http://127.0.0.1:8000",
             campaign: CampaignOpt = "cambridge",
             organizer: Annotated[str, typer.Option(metavar="EMAIL", help=(
                 "An organizer's email: makes the phones' join code and reads the server's counts."))
             ] = "organizer@cambridge.example",
             password: Annotated[str | None, typer.Option(envvar="DOORSTEP_SIM_PASSWORD", metavar="PASSWORD", help=(
                 "The organizer's password; by default the one `doorstep demo` saved."))] = None,
             canvassers: Annotated[int, typer.Option(min=1, max=1000, metavar="N", help="Phones (1 to 1,000).")] = 10,
             minutes: Annotated[int, typer.Option(min=1, max=1440, metavar="MINUTES", help=(
                 "Shift length in phone time (1 to 1,440)."))] = 60,
             seed: Annotated[int | None, typer.Option(metavar="N", help="Same seed, same shifts and faults.")] = None,
             as_json: JsonOpt = False) -> None:
    """Play phones against a server; exit 1 unless counts agree.

    The phones join, claim, knock offline with skewed clocks and sync over a bad network; what they sent and
    what the server counted must agree. Doubles as the load test.
    """
    import simulator

    options = simulator.Options(url=url, campaign=campaign, organizer=organizer, password=password,
                                canvassers=canvassers, minutes=minutes, seed=seed)
    try:
        report = asyncio.run(simulator.simulate(options))
    except simulator.BadInput as exc:
        err.print(f"doorstep: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from exc
    except simulator.SimulationFailed as exc:
        # The run gave up: the server stopped the phones. No bad input, so 1, like a disagreement.
        err.print(f"doorstep: simulate: {exc}", highlight=False, markup=False)
        raise typer.Exit(1) from exc
    if as_json:
        out.print_json(json.dumps(report))
    else:
        out.print(simulator.format_report(report), highlight=False, markup=False)
    if not report["agree"]:
        raise typer.Exit(1)
