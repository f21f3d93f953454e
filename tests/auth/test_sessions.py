"""Sessions end: refresh tokens rotate and a reused one ends its login, logout, a password change, a member
removed, a user disabled (issue 14, point 5)."""

from uuid import UUID

import pytest
from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import LoginSession
from app.campaigns.models import Membership, User
from app.organizing.models import TurfHistory, TurfHolding
from app.turfs.models import Turf
from tests.cli import doorstep
from tests.factories import PASSWORD, SECRET
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
WRONG = "Wrong email or password."


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def log_in(client, email: str, password: str = PASSWORD) -> dict:
    r = await client.post("/v1/auth/token", data={"username": email, "password": password})
    assert r.status_code == 200, r.text
    return r.json()


async def sessions_of(session, user_id: UUID) -> list[tuple[str | None, bool]]:
    """(revoked_reason, revoked) of each of the user's sessions, oldest first."""
    rows = (await session.execute(select(LoginSession.revoked_reason, LoginSession.revoked_at)
                                  .where(LoginSession.user_id == user_id)
                                  .order_by(LoginSession.created_at, LoginSession.id))).all()
    await session.rollback()
    return [(reason, at is not None) for reason, at in rows]


async def refused(client, access: str, *, status: int = 401) -> None:
    """The access token gets `status` on /v1/me and on a campaign route."""
    for url in ("/v1/me", HOME):
        assert_problem(await client.get(url, headers=auth(access)), 401 if url == "/v1/me" else status)


class TestRotation:
    async def test_a_refresh_token_works_once_and_each_answer_holds_the_next(self, client, world, session):
        first = await log_in(client, world.emails["canvasser"])
        second = (await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
        third = (await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})).json()
        assert len({first["refresh_token"], second["refresh_token"], third["refresh_token"]}) == 3
        for token in (first["access_token"], second["access_token"], third["access_token"]):
            me = await client.get("/v1/me", headers=auth(token))
            assert me.json()["email"] == world.emails["canvasser"]
        assert (await client.get(HOME, headers=auth(third["access_token"]))).json()["role"] == "canvasser"
        # One login, rotated twice.
        rows = (await session.execute(select(LoginSession.rotated_at, LoginSession.revoked_at).where(
            LoginSession.user_id == world.users["canvasser"]))).all()
        await session.rollback()
        assert [(rotated is not None, revoked) for rotated, revoked in rows] == [(True, None)]

    async def test_a_reused_refresh_token_ends_the_whole_login(self, client, world, session):
        stolen = await log_in(client, world.emails["canvasser"])
        other_login = await log_in(client, world.emails["canvasser"])
        # The thief (or the owner) uses it first; then the other party sends the same token again.
        fresh = (await client.post("/v1/auth/refresh", json={"refresh_token": stolen["refresh_token"]})).json()
        again = await client.post("/v1/auth/refresh", json={"refresh_token": stolen["refresh_token"]})
        assert "used already" in assert_problem(again, 401)["detail"]
        # The newer token of that login stops too, and its access tokens at once.
        r = await client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
        assert "log in again" in assert_problem(r, 401)["detail"]
        await refused(client, fresh["access_token"])
        await refused(client, stolen["access_token"])
        assert await sessions_of(session, world.users["canvasser"]) == [("reuse", True), (None, False)]
        # The user's other login lives on.
        me = await client.get("/v1/me", headers=auth(other_login["access_token"]))
        assert me.json()["email"] == world.emails["canvasser"]
        r = await client.post("/v1/auth/refresh", json={"refresh_token": other_login["refresh_token"]})
        assert r.status_code == 200 and r.json()["refresh_token"] != other_login["refresh_token"]

    async def test_a_refresh_token_without_a_session_is_refused(self, client, world):
        # As issued before sessions existed: nothing could ever revoke it, so it buys nothing.
        old = auth_service.issue_refresh_token(world.users["canvasser"], secret=SECRET, days=30)
        assert "log in again" in assert_problem(await client.post("/v1/auth/refresh",
                                                                  json={"refresh_token": old}), 401)["detail"]


class TestLogout:
    async def test_logout_ends_the_login_at_once_and_twice_is_harmless(self, client, world, session):
        login = await log_in(client, world.emails["organizer"])
        other = await log_in(client, world.emails["organizer"])
        r = await client.post("/v1/auth/logout", json={"refresh_token": login["refresh_token"]})
        assert r.status_code == 204 and r.content == b""
        await refused(client, login["access_token"])
        assert_problem(await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}), 401)
        again = await client.post("/v1/auth/logout", json={"refresh_token": login["refresh_token"]})
        assert again.status_code == 204
        assert await sessions_of(session, world.users["organizer"]) == [("logout", True), (None, False)]
        # Only that login: the other one still works.
        assert (await client.get(HOME, headers=auth(other["access_token"]))).json()["role"] == "organizer"

    async def test_logout_with_no_refresh_token_is_401_or_422(self, client, world):
        login = await log_in(client, world.emails["organizer"])
        for token in ("garbage", login["access_token"]):
            assert_problem(await client.post("/v1/auth/logout", json={"refresh_token": token}), 401)
        r = await client.post("/v1/auth/logout", json={})
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.refresh_token"
        # None of that ended the login.
        assert (await client.get("/v1/me", headers=auth(login["access_token"]))).status_code == 200


class TestPasswordChange:
    async def test_a_new_password_ends_every_old_token_and_keeps_this_phone_logged_in(self, client, world, session):
        email, user_id = world.emails["host"], world.users["host"]
        phone, laptop = await log_in(client, email), await log_in(client, email)
        sessionless = auth_service.issue_token(user_id, secret=SECRET, minutes=10)
        r = await client.post("/v1/me/password", headers=auth(phone["access_token"]),
                              json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
        assert r.status_code == 200, r.text
        fresh = r.json()
        assert fresh["expires_in"] == 3600 and fresh["refresh_expires_in"] == 30 * 86400
        for old in (phone, laptop):
            await refused(client, old["access_token"])
            assert_problem(await client.post("/v1/auth/refresh", json={"refresh_token": old["refresh_token"]}), 401)
        await refused(client, sessionless)
        # The answer's tokens work, and so does a token minted a moment after the change.
        assert (await client.get(HOME, headers=auth(fresh["access_token"]))).json()["role"] == "host"
        later = auth_service.issue_token(user_id, secret=SECRET, minutes=10)
        assert (await client.get("/v1/me", headers=auth(later))).status_code == 200
        assert (await client.post("/v1/auth/refresh", json={"refresh_token": fresh["refresh_token"]})
                ).status_code == 200
        assert await sessions_of(session, user_id) == [("password", True), ("password", True), (None, False)]
        user = await session.get(User, user_id)
        assert user is not None and user.tokens_valid_after is not None
        await session.rollback()
        wrong = await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        assert assert_problem(wrong, 401)["detail"] == "Wrong email or password."
        await log_in(client, email, "a brand new passphrase")

    async def test_a_wrong_current_password_or_a_weak_new_one_changes_nothing(self, client, world, session):
        login = await log_in(client, world.emails["host"])
        before = (await session.get(User, world.users["host"])).password_hash
        await session.rollback()
        for body, field in (({"current_password": "not it at all", "new_password": "a brand new passphrase"},
                             "current_password"),
                            ({"current_password": PASSWORD, "new_password": "password1"}, "new_password"),
                            ({"current_password": PASSWORD, "new_password": " " * 12}, "new_password"),
                            ({"current_password": PASSWORD, "new_password": world.emails["host"].upper()},
                             "new_password")):
            r = await client.post("/v1/me/password", headers=auth(login["access_token"]), json=body)
            assert assert_problem(r, 422)["errors"][0]["field"] == field, r.text
        assert (await session.get(User, world.users["host"])).password_hash == before
        await session.rollback()
        assert (await client.get("/v1/me", headers=auth(login["access_token"]))).status_code == 200
        assert await sessions_of(session, world.users["host"]) == [(None, False)]

    async def test_an_api_key_has_no_password(self, client, world):
        r = await client.post("/v1/me/password", headers=world.headers("key_all"),
                              json={"current_password": PASSWORD, "new_password": "a brand new passphrase"})
        assert_problem(r, 403)


class TestMembers:
    async def test_admins_list_every_member_a_page_at_a_time(self, client, world, session):
        campaign_id = (await session.execute(select(Membership.campaign_id).where(
            Membership.user_id == world.users["admin"]))).scalar_one()
        rows = (await session.execute(select(Membership.user_id, Membership.role).where(
            Membership.campaign_id == campaign_id).order_by(Membership.id))).all()
        await session.rollback()
        seen, cursor = [], None
        while True:
            r = await client.get(f"{HOME}/members", headers=world.headers("admin"),
                                 params={"limit": 2} | ({"cursor": cursor} if cursor else {}))
            body = r.json()
            assert len(body["items"]) <= 2
            seen += [(UUID(m["user_id"]), m["role"], m["email"]) for m in body["items"]]
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert r.headers["link"].endswith('rel="next"')
        emails = {world.users[who]: world.emails[who] for who in world.users}
        assert seen == [(user_id, role, emails[user_id]) for user_id, role in rows]
        assert {"admin", "organizer", "host", "canvasser"} <= {role for _, role, _ in seen}
        assert_problem(await client.get(f"{HOME}/members", params={"cursor": "nonsense!"},
                                        headers=world.headers("admin")), 422)

    async def test_a_removed_member_loses_the_campaign_their_turfs_and_their_logins(self, cut_client, world,
                                                                                    cut_session):
        client, session, canvasser = cut_client, cut_session, world.users["canvasser"]
        login = await log_in(client, world.emails["canvasser"])
        turf_id = (await session.execute(select(Turf.id).where(Turf.holders == 0).order_by(Turf.id).limit(1))
                   ).scalar_one()
        await session.rollback()
        r = await client.post(f"{HOME}/turfs/{turf_id}/assignments", json={"user_ids": [str(canvasser)]},
                              headers=world.headers("organizer"))
        assert r.status_code == 201
        r = await client.delete(f"{HOME}/members/{canvasser}", headers=world.headers("admin"))
        assert r.status_code == 204 and r.content == b""
        # Their token is a stranger's in the campaign now; their login is over everywhere.
        assert_problem(await client.get(HOME, headers=auth(login["access_token"])), 404)
        assert_problem(await client.get("/v1/me", headers=auth(login["access_token"])), 401)
        assert_problem(await client.get(HOME, headers=world.headers("canvasser")), 404)
        assert_problem(await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}), 401)
        # The turf went back, with its history.
        assert (await session.execute(select(TurfHolding).where(TurfHolding.user_id == canvasser))).all() == []
        assert (await session.get(Turf, turf_id)).holders == 0
        history = (await session.execute(select(TurfHistory.action, TurfHistory.by_user_id).where(
            TurfHistory.turf_id == turf_id, TurfHistory.user_id == canvasser).order_by(TurfHistory.id))).all()
        assert [tuple(h) for h in history] == [("assigned", world.users["organizer"]),
                                               ("unassigned", world.users["admin"])]
        assert (await session.execute(select(Membership).where(Membership.user_id == canvasser))).all() == []
        assert await sessions_of(session, canvasser) == [("removed", True)]
        listed = (await client.get(f"{HOME}/members", headers=world.headers("admin"))).json()["items"]
        assert str(canvasser) not in {m["user_id"] for m in listed}
        # Removing them again, or someone of another campaign only, is a 404.
        for who in ("canvasser", "foreign_admin"):
            assert_problem(await client.delete(f"{HOME}/members/{world.users[who]}", headers=world.headers("admin")),
                           404)

    async def test_the_last_admin_stays(self, client, world, session):
        r = await client.delete(f"{HOME}/members/{world.users['admin']}", headers=world.headers("admin"))
        assert "last admin" in assert_problem(r, 409)["detail"]
        assert (await session.execute(select(Membership.role).where(
            Membership.user_id == world.users["admin"]))).scalar_one() == "admin"
        await session.rollback()
        # A member of two campaigns removed from one keeps the other (once logged in again).
        r = await client.delete(f"{HOME}/members/{world.users['dual']}", headers=world.headers("admin"))
        assert r.status_code == 204
        dual = await log_in(client, world.emails["dual"])
        me = (await client.get("/v1/me", headers=auth(dual["access_token"]))).json()
        assert [(m["campaign_id"], m["role"]) for m in me["memberships"]] == [("somerville", "organizer")]


class TestCli:
    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_disable_ends_every_login_and_log_in_looks_like_a_wrong_password(self, client, world, db_url,
                                                                                  tmp_path, session):
        email = world.emails["organizer"]
        login = await log_in(client, email)
        ran = await doorstep(db_url, tmp_path, "user", "disable", email)
        assert ran.code == 0 and "disabled" in ran.out, ran
        await refused(client, login["access_token"])
        await refused(client, world.headers("organizer")["Authorization"].split()[1])
        assert_problem(await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]}), 401)
        right = await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD})
        wrong = await client.post("/v1/auth/token", data={"username": email, "password": "not the password"})
        assert assert_problem(right, 401)["detail"] == assert_problem(wrong, 401)["detail"] == WRONG
        assert await sessions_of(session, world.users["organizer"]) == [("disabled", True)]
        user = await session.get(User, world.users["organizer"])
        assert user.disabled_at is not None and user.tokens_valid_after is not None
        await session.rollback()
        ran = await doorstep(db_url, tmp_path, "user", "enable", email)
        assert ran.code == 0, ran
        await log_in(client, email)

    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_remove_and_a_password_reset_end_logins_and_bad_input_is_one_line(self, client, world, db_url,
                                                                                   tmp_path, session):
        host, canvasser = await log_in(client, world.emails["host"]), await log_in(client, world.emails["canvasser"])
        ran = await doorstep(db_url, tmp_path, "user", "remove", world.emails["host"], "--campaign", "cambridge")
        assert ran.code == 0 and "no longer" in ran.out, ran
        assert_problem(await client.get(HOME, headers=auth(host["access_token"])), 404)
        assert_problem(await client.post("/v1/auth/refresh", json={"refresh_token": host["refresh_token"]}), 401)
        # `user add` with a new password for someone who has one: their old logins end.
        ran = await doorstep(db_url, tmp_path, "user", "add", world.emails["canvasser"], "--role", "canvasser",
                             "--campaign", "cambridge", "--password-stdin", stdin="a reset passphrase\n")
        assert ran.code == 0, ran
        await refused(client, canvasser["access_token"])
        assert await sessions_of(session, world.users["canvasser"]) == [("password", True)]
        await log_in(client, world.emails["canvasser"], "a reset passphrase")
        bad = [await doorstep(db_url, tmp_path, *args, stdin=stdin) for args, stdin in (
            (("user", "remove", "nobody@nowhere.test", "--campaign", "cambridge"), ""),
            (("user", "disable", "nobody@nowhere.test"), ""),
            (("user", "add", "new@example.test", "--role", "canvasser", "--campaign", "cambridge",
              "--password-stdin"), "12345678\n"))]
        for ran in bad:
            assert ran.code == 2 and ran.err.count("\n") == 1 and ran.err.startswith("doorstep: "), ran
        assert "common" in bad[2].err
        assert (await session.execute(select(User).where(User.email == "new@example.test"))).all() == []
