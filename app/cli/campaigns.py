"""`doorstep campaign`, `doorstep user` and `doorstep apikey`: campaigns, their members and their API keys."""

import sys
from typing import Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import service as auth_service
from app.auth.models import Scope
from app.campaigns import service as campaign_service
from app.campaigns.models import Role
from app.cli.common import CampaignOpt, get_campaign, group, out, run
from app.errors import NotFound

campaign_cli = group("Campaigns.")
user_cli = group("Users and their roles.")
key_cli = group("API keys for third-party tools.")


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
        user, membership = await campaign_service.add_member(session, await get_campaign(session, campaign), email,
                                                             role, name=name, password=password)
        return f"{user.email} is {membership.role} in {campaign}."
    out.print(run(work), highlight=False)


@user_cli.command("remove")
def user_remove(email: str, campaign: CampaignOpt) -> None:
    """Take a user out of a campaign: their turfs there go back, and every login of theirs ends."""
    from app.organizing import members

    async def work(session: AsyncSession) -> str:
        c = await get_campaign(session, campaign)
        user = await campaign_service.find_user(session, email)
        if user is None or c.id is None:
            raise NotFound(f"no user {email.strip().lower()}")
        await members.remove_member(session, c.id, user.id, by=None)
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
        c = await get_campaign(session, campaign)
        assert c.id is not None
        _, key = await auth_service.create_api_key(session, c.id, name=name, scopes=scope, created_by=None)
        return key
    out.print(run(work), highlight=False)


@key_cli.command("list")
def key_list(campaign: CampaignOpt) -> None:
    """List a campaign's API keys (not their secrets)."""
    async def work(session: AsyncSession) -> list[Any]:
        c = await get_campaign(session, campaign)
        assert c.id is not None
        return list(await auth_service.list_api_keys(session, c.id))
    for k in run(work):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        out.print(f"{k.id}\t{k.prefix}...\t{k.name}\t{k.scopes}\t{state}", highlight=False)
