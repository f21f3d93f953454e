"""Logging in, tokens, API keys."""

from uuid import UUID

from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import ApiKey
from tests.factories import PASSWORD, SECRET
from tests.test_errors import assert_problem


class TestToken:
    async def test_password_gives_a_token_that_works(self, client, world):
        r = await client.post("/v1/auth/token", data={"username": world.emails["organizer"].upper(),
                                                      "password": PASSWORD})
        assert r.status_code == 200
        body = r.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 3600
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["email"] == world.emails["organizer"]
        assert me.json()["memberships"] == [{"campaign_id": "cambridge", "campaign_name": "Cambridge",
                                             "role": "organizer"}]
        assert "password" not in me.text

    async def test_a_phone_back_from_hours_offline_refreshes_its_token_without_the_password(self, client, world):
        login = (await client.post("/v1/auth/token", data={"username": world.emails["canvasser"],
                                                           "password": PASSWORD})).json()
        assert login["refresh_expires_in"] == 30 * 86400
        # The refresh token is no access token.
        r = await client.get("/v1/me", headers={"Authorization": f"Bearer {login['refresh_token']}"})
        assert "/v1/auth/refresh" in assert_problem(r, 401)["detail"]
        fresh = await client.post("/v1/auth/refresh", json={"refresh_token": login["refresh_token"]})
        assert fresh.status_code == 200 and fresh.json()["expires_in"] == 3600
        me = await client.get("/v1/me", headers={"Authorization": f"Bearer {fresh.json()['access_token']}"})
        assert me.json()["email"] == world.emails["canvasser"]
        # Nor is an access token, an expired refresh token or garbage a refresh token.
        expired = auth_service.issue_refresh_token(world.users["canvasser"], secret=SECRET, days=-1)
        for token in (login["access_token"], expired, "garbage"):
            r = await client.post("/v1/auth/refresh", json={"refresh_token": token})
            assert assert_problem(r, 401)["detail"].endswith(("log in again.", "from the login."))
        r = await client.post("/v1/auth/refresh", json={})
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.refresh_token"

    async def test_wrong_password_and_unknown_email_look_alike(self, client, world):
        wrong = await client.post("/v1/auth/token", data={"username": world.emails["admin"], "password": "nope"})
        unknown = await client.post("/v1/auth/token", data={"username": "who@nowhere.test", "password": "nope"})
        assert assert_problem(wrong, 401)["detail"] == assert_problem(unknown, 401)["detail"]
        assert wrong.headers["www-authenticate"] == "Bearer"

    async def test_expired_forged_and_garbage_tokens_are_401(self, client, world):
        user = world.users["organizer"]
        for token in (auth_service.issue_token(user, secret=SECRET, minutes=-1),
                      auth_service.issue_token(user, secret="another-secret-" + "y" * 40, minutes=10), "garbage"):
            r = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            assert "log in again" in assert_problem(r, 401)["detail"]

    async def test_one_person_holds_different_roles_in_different_campaigns(self, client, world):
        r = await client.get("/v1/campaigns", headers=world.headers("dual"))
        assert [(c["id"], c["role"]) for c in r.json()] == [("cambridge", "canvasser"), ("somerville", "organizer")]
        r = await client.get("/v1/campaigns", headers=world.headers("organizer"))
        assert [c["id"] for c in r.json()] == ["cambridge"]


class TestApiKeys:
    async def test_admin_makes_a_key_shown_once_that_works_both_ways(self, client, world, session):
        r = await client.post("/v1/campaigns/cambridge/api-keys",
                              json={"name": "dashboard", "scopes": ["turfs:read", "progress:read"]},
                              headers=world.headers("admin"))
        assert r.status_code == 201
        created = r.json()
        key = created["key"]
        assert key.startswith("dsk_") and created["prefix"] == key[:12]
        stored = (await session.execute(select(ApiKey).where(ApiKey.id == UUID(created["id"])))).scalar_one()
        assert key not in stored.key_hash and stored.scopes == "progress:read turfs:read"
        listed = (await client.get("/v1/campaigns/cambridge/api-keys", headers=world.headers("admin"))).json()
        assert created["id"] in [k["id"] for k in listed] and key not in str(listed)
        for headers in ({"Authorization": f"Bearer {key}"}, {"X-API-Key": key}):
            r = await client.get("/v1/campaigns/cambridge/precincts/9-1", headers=headers)
            assert r.json()["households"] == 1402
        assert [c["id"] for c in (await client.get("/v1/campaigns", headers={"X-API-Key": key})).json()] == [
            "cambridge"]

    async def test_revoked_key_stops_at_once(self, client, world):
        created = (await client.post("/v1/campaigns/cambridge/api-keys", json={"name": "x", "scopes": ["turfs:read"]},
                                     headers=world.headers("admin"))).json()
        r = await client.delete(f"/v1/campaigns/cambridge/api-keys/{created['id']}", headers=world.headers("admin"))
        assert r.json()["revoked_at"] is not None
        r = await client.get("/v1/campaigns/cambridge/precincts", headers={"X-API-Key": created["key"]})
        assert "revoked" in assert_problem(r, 401)["detail"]

    async def test_unknown_scope_and_empty_name_are_422(self, client, world, session):
        before = len((await session.execute(select(ApiKey))).all())
        r = await client.post("/v1/campaigns/cambridge/api-keys", json={"name": "", "scopes": ["everything"]},
                              headers=world.headers("admin"))
        assert {e["field"] for e in assert_problem(r, 422)["errors"]} == {"body.name", "body.scopes.0"}
        assert len((await session.execute(select(ApiKey))).all()) == before

    async def test_a_key_is_not_a_user(self, client, world):
        assert_problem(await client.get("/v1/me", headers=world.headers("key_all")), 403)
