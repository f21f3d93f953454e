"""`doorstep campaign`, `doorstep user` and `doorstep apikey`: campaigns, their members and their API keys."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.auth.scopes import Scope
from app.campaigns.roles import Role
from app.cli.common import CampaignOpt, EmailArg, get_campaign, group, out, run
from app.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

campaign_cli = group("Campaigns.")
user_cli = group("Users and their roles.")
key_cli = group("API keys for third-party tools.")


@campaign_cli.command("create")
def campaign_create(slug: Annotated[str, typer.Argument(metavar="SLUG", help=(
                        "Lower-case letters, digits and dashes: the campaign in URLs."))],
                    name: Annotated[str, typer.Option(metavar="NAME", help="The campaign's name.")]) -> None:
    """Create a campaign."""
    from app.campaigns import service as campaign_service

    campaign = run(lambda s: campaign_service.create_campaign(s, slug, name))
    out.print(f"Created campaign {campaign.slug} ({campaign.name}).")


@campaign_cli.command("list")
def campaign_list() -> None:
    """List the campaigns."""
    from app.campaigns import service as campaign_service

    for c in run(campaign_service.list_campaigns):
        out.print(f"{c.slug}\t{c.name}", highlight=False)


def read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return typer.prompt("Password", hide_input=True, confirmation_prompt=True)


@user_cli.command("add")
def user_add(email: EmailArg, role: Annotated[Role, typer.Option(metavar="ROLE", help=(
                 "The user's role in the campaign: admin, organizer, host or canvasser."))],
             campaign: CampaignOpt,
             name: Annotated[str | None, typer.Option(metavar="NAME", help="Display name.")] = None,
             password_stdin: Annotated[bool, typer.Option("--password-stdin",
                                                          help="Read the password from stdin.")] = False) -> None:
    """Add a user to a campaign with a role.

    An existing user keeps their password unless given one.
    """
    from app.campaigns import service as campaign_service

    async def work(session: AsyncSession) -> str:
        found = await campaign_service.find_user(session, email)
        password = read_password(password_stdin) if found is None or password_stdin else None
        user, membership = await campaign_service.add_member(session, await get_campaign(session, campaign), email,
                                                             role, name=name, password=password)
        return f"{user.email} is {membership.role} in {campaign}."
    out.print(run(work), highlight=False)


@user_cli.command("remove")
def user_remove(email: EmailArg, campaign: CampaignOpt) -> None:
    """Take a user out of a campaign and end their logins.

    Their turfs there go back to the pool.
    """
    from app.campaigns import service as campaign_service
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
def user_disable(email: EmailArg) -> None:
    """Disable a user everywhere and end their logins.

    They can't log in, and every token they hold stops at once.
    """
    from app.campaigns import service as campaign_service

    user = run(lambda s: campaign_service.set_disabled(s, email, disabled=True))
    out.print(f"{user.email} is disabled; their logins are ended.", highlight=False)


@user_cli.command("enable")
def user_enable(email: EmailArg) -> None:
    """Let a disabled user log in again.

    With their password; their old tokens stay ended.
    """
    from app.campaigns import service as campaign_service

    user = run(lambda s: campaign_service.set_disabled(s, email, disabled=False))
    out.print(f"{user.email} may log in again.", highlight=False)


@key_cli.command("create")
def key_create(campaign: CampaignOpt, name: Annotated[str, typer.Option(metavar="NAME", help="Who the key is for.")],
               scope: Annotated[list[Scope], typer.Option(metavar="SCOPE", help=(
                   "progress:read, turfs:read, results:read, people:read or webhooks:write; repeat for several."))]
               ) -> None:
    """Make an API key; it is printed once and can't be shown again."""
    from app.auth import service as auth_service

    async def work(session: AsyncSession) -> str:
        c = await get_campaign(session, campaign)
        assert c.id is not None
        _, key = await auth_service.create_api_key(session, c.id, name=name, scopes=scope, created_by=None)
        return key
    out.print(run(work), highlight=False)


@key_cli.command("list")
def key_list(campaign: CampaignOpt) -> None:
    """List a campaign's API keys (not their secrets)."""
    from app.auth import service as auth_service

    async def work(session: AsyncSession) -> list[Any]:
        c = await get_campaign(session, campaign)
        assert c.id is not None
        return list(await auth_service.list_api_keys(session, c.id))
    for k in run(work):
        state = f"revoked {k.revoked_at:%Y-%m-%d}" if k.revoked_at else "active"
        out.print(f"{k.id}\t{k.prefix}...\t{k.name}\t{k.scopes}\t{state}", highlight=False)
