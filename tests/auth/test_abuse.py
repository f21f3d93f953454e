"""Abuse is bounded: rate limits on log-in, refresh and join, a join's code checked before any hashing, answers
that don't tell whether an email has an account, hashing in a bounded pool, and the password policy (issue 14,
point 6)."""

import asyncio
import time

import pytest
from httpx import ASGITransport, AsyncClient
from sqlalchemy import func, select

from app.auth import passwords
from app.campaigns.models import User
from app.config import Settings
from app.main import create_app
from app.organizing import members
from app.organizing.models import JoinCode
from tests.conftest import app_client
from tests.factories import PASSWORD, SECRET
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"


async def make_code(client, world) -> str:
    r = await client.post(f"{HOME}/join-codes", headers=world.headers("organizer"),
                          json={"role": "canvasser", "expires_at": "2099-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    return r.json()["code"]


def joiner(code: str, email: str, password: str = PASSWORD) -> dict:
    return {"code": code, "name": "Pat", "email": email, "password": password}


def assert_limited(r) -> int:
    body = assert_problem(r, 429)
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 60 and f"{wait} s" in body["detail"], (wait, body)
    assert body["type"] == "/problems/rate-limited"
    return wait


class TestRateLimits:
    async def test_log_in_is_limited_per_account_and_answers_rightly_before(self, db_url, world):
        email = world.emails["organizer"]
        async with app_client(db_url, rate_per_account="3/minute") as client:
            for _ in range(2):
                wrong = await client.post("/v1/auth/token", data={"username": email, "password": "not it, no"})
                assert assert_problem(wrong, 401)["detail"] == "Wrong email or password."
            right = await client.post("/v1/auth/token", data={"username": email.upper(), "password": PASSWORD})
            assert right.status_code == 200 and right.json()["access_token"]
            # The fourth attempt is refused however right it is; another account is not held up.
            assert_limited(await client.post("/v1/auth/token", data={"username": email, "password": PASSWORD}))
            other = await client.post("/v1/auth/token", data={"username": world.emails["host"], "password": PASSWORD})
            assert other.status_code == 200

    async def test_log_in_is_limited_per_address_across_emails(self, db_url, world):
        app = create_app(Settings(database_url=db_url, jwt_secret=SECRET, rate_per_address="3/minute",
                                  _env_file=None))
        async with app.router.lifespan_context(app), AsyncClient(
                transport=ASGITransport(app=app, client=("198.51.100.7", 4000)), base_url="http://test") as client, \
                AsyncClient(transport=ASGITransport(app=app, client=("203.0.113.9", 4000)),
                            base_url="http://test") as elsewhere:
            for n in range(3):
                r = await client.post("/v1/auth/token", data={"username": f"guess{n}@example.test", "password": "x"})
                assert_problem(r, 401)
            login = {"username": world.emails["host"], "password": PASSWORD}
            assert_limited(await client.post("/v1/auth/token", data=login))
            # A header is no address: only the connection's counts.
            assert_limited(await client.post("/v1/auth/token", data=login, headers={"X-Forwarded-For": "192.0.2.1"}))
            # Another client address still gets in.
            assert (await elsewhere.post("/v1/auth/token", data=login)).status_code == 200

    async def test_join_and_refresh_are_limited_per_account(self, db_url, world, session):
        async with app_client(db_url, rate_per_account="2/minute") as client:
            code = await make_code(client, world)
            email = "spray@example.test"
            first = await client.post("/v1/join", json=joiner(code, email))
            assert first.status_code == 201 and first.json()["new_account"] is True
            again = await client.post("/v1/join", json=joiner(code, email.upper(), "a wrong passphrase"))
            assert_problem(again, 401)
            assert_limited(await client.post("/v1/join", json=joiner(code, email)))
            # Refreshes count per user: two go through, the third waits.
            token = first.json()["refresh_token"]
            for _ in range(2):
                r = await client.post("/v1/auth/refresh", json={"refresh_token": token})
                assert r.status_code == 200
                token = r.json()["refresh_token"]
            assert_limited(await client.post("/v1/auth/refresh", json={"refresh_token": token}))
        # A refused attempt wrote nothing: one account, and the code used once.
        assert await session.scalar(select(func.count()).select_from(User).where(User.email == email)) == 1
        assert await session.scalar(select(JoinCode.uses).where(JoinCode.code == code)) == 1

    async def test_join_is_limited_per_address(self, db_url, world):
        async with app_client(db_url, rate_per_address="2/minute") as client:
            for n in range(2):
                assert_problem(await client.post("/v1/join", json=joiner("NOSUCHCODE", f"x{n}@example.test")), 404)
            assert_limited(await client.post("/v1/join", json=joiner("NOSUCHCODE", "y@example.test")))

    def test_a_rate_that_does_not_parse_is_a_settings_error(self):
        with pytest.raises(ValueError, match="rate_per_account"):
            Settings(jwt_secret=SECRET, rate_per_account="lots", _env_file=None)


class TestJoinWithoutHashing:
    async def test_a_bad_code_answers_at_once_while_every_hashing_thread_is_busy(self, client, world, session):
        """With the hashing pool taken, a join that had to hash would wait: unknown and dead codes don't."""
        live, dead = await make_code(client, world), await make_code(client, world)
        dead_id = await session.scalar(select(JoinCode.id).where(JoinCode.code == dead))
        await session.rollback()
        r = await client.delete(f"{HOME}/join-codes/{dead_id}", headers=world.headers("organizer"))
        assert r.json()["revoked_at"] is not None
        limiter = passwords.hash_limiter()
        holders = [object() for _ in range(int(limiter.total_tokens))]
        for holder in holders:
            await limiter.acquire_on_behalf_of(holder)
        try:
            started = time.perf_counter()
            unknown = await asyncio.wait_for(client.post("/v1/join", json=joiner("NOSUCHCODE", "a@example.test")), 5)
            assert "No such join code" in assert_problem(unknown, 404)["detail"]
            revoked = await asyncio.wait_for(client.post("/v1/join", json=joiner(dead, "b@example.test")), 5)
            assert "revoked" in assert_problem(revoked, 410)["detail"]
            assert time.perf_counter() - started < 5
            # A good code does wait for a hashing thread, and goes on once one is free.
            good = asyncio.create_task(client.post("/v1/join", json=joiner(live, "c@example.test")))
            for _ in range(200):
                if limiter.statistics().tasks_waiting:
                    break
                await asyncio.sleep(0.01)
            assert limiter.statistics().tasks_waiting == 1 and not good.done()
        finally:
            for holder in holders:
                limiter.release_on_behalf_of(holder)
        assert (await good).status_code == 201
        emails = set((await session.execute(select(User.email).where(User.email.like("%@example.test")))).scalars())
        await session.rollback()
        assert emails == {"c@example.test"}

    async def test_hashing_runs_in_a_pool_of_its_own_size(self, db_url):
        async with app_client(db_url, hash_threads=3):
            assert passwords.hash_limiter().total_tokens == 3


class TestJoinDoesNotTell:
    async def test_an_existing_email_with_a_wrong_password_gets_a_neutral_answer(self, client, world, session):
        code = await make_code(client, world)
        r = await client.post("/v1/join", json=joiner(code, world.emails["foreign_admin"], "not their passphrase"))
        detail = assert_problem(r, 401)["detail"]
        assert detail == members.CANT_JOIN and "exists" not in detail
        assert await session.scalar(select(JoinCode.uses).where(JoinCode.code == code)) == 0
        await session.rollback()
        # With the right password it joins; a new email with any good password too.
        ok = await client.post("/v1/join", json=joiner(code, world.emails["foreign_admin"]))
        assert (ok.status_code, ok.json()["new_account"]) == (201, False)
        new = await client.post("/v1/join", json=joiner(code, "fresh@example.test", "not their passphrase"))
        assert (new.status_code, new.json()["new_account"]) == (201, True)

    async def test_a_disabled_account_cannot_join(self, client, world, session):
        from app.campaigns import service as campaign_service

        await campaign_service.set_disabled(session, world.emails["foreign_admin"], disabled=True)
        code = await make_code(client, world)
        r = await client.post("/v1/join", json=joiner(code, world.emails["foreign_admin"]))
        assert assert_problem(r, 401)["detail"] == members.CANT_JOIN


class TestPasswordPolicy:
    @pytest.mark.parametrize(("password", "why"), [
        ("12345678", "common"), ("        ", "not all spaces"), ("Password1", "common"), ("short", "at least 8"),
        ("x" * 257, "at most 256"), ("newcomer@example.test", "email"), ("NEWCOMER", "email"),
    ])
    async def test_join_refuses_weak_passwords_naming_the_field(self, client, world, session, password, why):
        code = await make_code(client, world)
        r = await client.post("/v1/join", json=joiner(code, "newcomer@example.test", password))
        body = assert_problem(r, 422)
        assert body["errors"][0]["field"].removeprefix("body.") == "password" and why in body["detail"], body
        assert await session.scalar(select(func.count()).select_from(User).where(
            User.email == "newcomer@example.test")) == 0
        assert await session.scalar(select(JoinCode.uses).where(JoinCode.code == code)) == 0

    async def test_the_policy_is_the_same_for_an_email_that_has_an_account(self, client, world):
        # Else a weak password would tell an existing account (its password checked) from a new one (refused).
        code = await make_code(client, world)
        r = await client.post("/v1/join", json=joiner(code, world.emails["foreign_admin"], "12345678"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "password"

    def test_the_list_ships_with_the_package_and_the_tests_password_passes(self):
        assert len(passwords.common_passwords()) > 19_000 and "12345678" in passwords.common_passwords()
        passwords.check_password(PASSWORD, email="someone@example.test")


# A database of its own: concurrent requests.
pytestmark = pytest.mark.own_database
