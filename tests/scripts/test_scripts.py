"""Survey scripts: questions and result codes, versions frozen once in use, and which turfs carry which."""

from sqlalchemy import func, select

from app.precincts.models import Precinct
from app.scripts.models import ScriptVersion
from app.scripts.service import STANDARD_CODES
from app.turfs.models import Turf
from tests.test_errors import assert_problem

HOME = "/v1/campaigns/cambridge"
SCRIPT = {
    "name": "Spring doors",
    "questions": [
        {"id": "support", "text": "Can we count on your vote?", "kind": "single",
         "choices": [{"id": "yes", "label": "Yes"}, {"id": "lean", "label": "Leaning"}, {"id": "no", "label": "No"}]},
        {"id": "issues", "text": "What matters most to you?", "kind": "multiple",
         "choices": [{"id": "housing", "label": "Housing"}, {"id": "transit", "label": "Transit"}]},
        {"id": "comment", "text": "Anything else?", "kind": "text"},
    ],
    "result_codes": [{"code": "wrong_address", "label": "Wrong address"},
                     {"code": "spoke_to_other", "label": "Spoke to someone else", "contacted": True}],
}


async def create(client, world, body=SCRIPT, who="organizer") -> dict:
    r = await client.post(f"{HOME}/scripts", json=body, headers=world.headers(who))
    assert r.status_code == 201, r.text
    return r.json()


async def use(client, world, script_id: int, **uses) -> dict:
    r = await client.put(f"{HOME}/scripts/{script_id}/uses", json=uses, headers=world.headers("organizer"))
    assert r.status_code == 200, r.text
    return r.json()


async def script_of(client, world, turf_id: int) -> tuple[int | None, int]:
    body = (await client.get(f"{HOME}/turfs/{turf_id}/walklist", headers=world.headers("organizer"))).json()
    return body["script"]["script_id"], body["script"]["version"]


class TestCreate:
    async def test_a_script_has_its_questions_and_the_standard_results_then_its_own(self, client, world):
        script = await create(client, world)
        current = script["current"]
        assert (script["version"], current["version"], current["frozen"]) == (1, 1, False)
        assert [q["id"] for q in current["questions"]] == ["support", "issues", "comment"]
        assert current["questions"][2]["choices"] == []
        codes = [c["code"] for c in current["result_codes"]]
        assert set(codes[:7]) == STANDARD_CODES and codes[7:] == ["wrong_address", "spoke_to_other"]
        assert {c["code"]: c["contacted"] for c in current["result_codes"]}["contacted"] is True
        assert script["uses"] == {"default": False, "precincts": [], "turf_ids": []} and script["turfs_using"] == 0
        listed = (await client.get(f"{HOME}/scripts", headers=world.headers("admin"))).json()["items"]
        assert [s["id"] for s in listed] == [script["id"]]

    async def test_bad_scripts_are_refused_naming_the_field(self, client, world, session):
        def changed(**change):
            return {**SCRIPT, **change}
        text_with_choices = {"id": "q", "text": "Why?", "kind": "text", "choices": [{"id": "a", "label": "A"}]}
        cases = [
            (changed(questions=[text_with_choices]), "body.questions.0"),
            (changed(questions=[{"id": "q", "text": "?", "kind": "single", "choices": [{"id": "a", "label": "A"}]}]),
             "body.questions.0"),
            (changed(questions=[SCRIPT["questions"][0], SCRIPT["questions"][0]]), "body.questions"),
            (changed(questions=[{**SCRIPT["questions"][2], "id": "Comment!"}]), "body.questions.0.id"),
            (changed(questions=[{**SCRIPT["questions"][2], "kind": "essay"}]), "body.questions.0.kind"),
            (changed(result_codes=[{"code": "not_home", "label": "Out"}]), "result_codes[0].code"),
            (changed(result_codes=[{"code": "gone", "label": "Gone"}, {"code": "gone", "label": "Away"}]),
             "result_codes[1].code"),
            (changed(name=" "), "body.name"),
        ]
        for body, field in cases:
            r = await client.post(f"{HOME}/scripts", json=body, headers=world.headers("organizer"))
            assert field in [e["field"] for e in assert_problem(r, 422)["errors"]], (field, r.text)
        await create(client, world)
        assert_problem(await client.post(f"{HOME}/scripts", json=changed(name="spring DOORS"),
                                         headers=world.headers("organizer")), 409)
        await session.rollback()
        assert await session.scalar(select(func.count()).select_from(ScriptVersion)) == 1


class TestVersions:
    async def test_an_unused_script_is_edited_in_place_and_a_used_one_gets_a_new_version(self, client, world):
        script = await create(client, world)
        draft = {**SCRIPT, "questions": SCRIPT["questions"][:1]}
        r = (await client.put(f"{HOME}/scripts/{script['id']}", json=draft, headers=world.headers("organizer"))).json()
        assert r["version"] == 1 and len(r["current"]["questions"]) == 1 and len(r["versions"]) == 1

        used = await use(client, world, script["id"], default=True)
        assert used["current"]["frozen"] is True and used["uses"]["default"] is True
        r = (await client.put(f"{HOME}/scripts/{script['id']}", json=SCRIPT, headers=world.headers("organizer"))).json()
        assert (r["version"], len(r["current"]["questions"]), r["current"]["frozen"]) == (2, 3, True)
        assert [(v["version"], v["frozen"]) for v in r["versions"]] == [(1, True), (2, True)]
        old = (await client.get(f"{HOME}/scripts/{script['id']}/versions/1", headers=world.headers("organizer"))).json()
        assert [q["id"] for q in old["questions"]] == ["support"]

        # The same content again is no change.
        again = (await client.put(f"{HOME}/scripts/{script['id']}", json=SCRIPT,
                                  headers=world.headers("organizer"))).json()
        assert again["version"] == 2
        r = await client.get(f"{HOME}/scripts/{script['id']}/versions/3", headers=world.headers("organizer"))
        assert_problem(r, 404)


class TestUses:
    async def test_a_turf_carries_its_own_script_else_its_precincts_else_the_default(self, cut_client, cut_session,
                                                                                     world):
        turfs = (await cut_session.execute(
            select(Turf.id, Precinct.code).join(Precinct, Precinct.id == Turf.precinct_id)
            .where(Turf.status == "active").order_by(Turf.id))).all()
        in_91 = [t.id for t in turfs if t.code == "9-1"]
        elsewhere = next(t.id for t in turfs if t.code != "9-1")
        default = await create(cut_client, world, {**SCRIPT, "name": "Default"})
        for_precinct = await create(cut_client, world, {**SCRIPT, "name": "For 9-1"})
        for_turf = await create(cut_client, world, {**SCRIPT, "name": "For one turf"})
        assert await script_of(cut_client, world, in_91[0]) == (None, 0)

        await use(cut_client, world, default["id"], default=True)
        await use(cut_client, world, for_precinct["id"], precincts=["9-1"])
        used = await use(cut_client, world, for_turf["id"], turf_ids=[in_91[0]])
        assert used["turfs_using"] == 1 and used["uses"]["turf_ids"] == [in_91[0]]
        assert await script_of(cut_client, world, in_91[0]) == (for_turf["id"], 1)
        assert await script_of(cut_client, world, in_91[1]) == (for_precinct["id"], 1)
        assert await script_of(cut_client, world, elsewhere) == (default["id"], 1)
        read = (await cut_client.get(f"{HOME}/scripts/{for_precinct['id']}", headers=world.headers("organizer"))).json()
        assert read["turfs_using"] == len(in_91) - 1 and read["uses"]["precincts"] == ["9-1"]

        # The turf's own script goes: it falls back to its precinct's, and its version moves on.
        before = (await cut_client.get(f"{HOME}/turfs/{in_91[0]}/walklist", headers=world.headers("organizer"))).json()
        await use(cut_client, world, for_turf["id"])
        after = (await cut_client.get(f"{HOME}/turfs/{in_91[0]}/walklist?since={before['version']}",
                                      headers=world.headers("organizer"))).json()
        assert after["script"]["script_id"] == for_precinct["id"] and after["version"] > before["version"]

        # A new version of the precinct's script reaches every turf of the precinct.
        await cut_client.put(f"{HOME}/scripts/{for_precinct['id']}", json={**SCRIPT, "name": "For 9-1, v2"},
                             headers=world.headers("organizer"))
        assert {await script_of(cut_client, world, t) for t in in_91} == {(for_precinct["id"], 2)}
        assert await script_of(cut_client, world, elsewhere) == (default["id"], 1)

    async def test_unknown_precincts_and_turfs_are_named(self, client, world):
        script = await create(client, world)
        r = await client.put(f"{HOME}/scripts/{script['id']}/uses", json={"precincts": ["9-1", "99-9"]},
                             headers=world.headers("organizer"))
        problem = assert_problem(r, 422)
        assert problem["errors"][0]["field"] == "precincts" and "99-9" in problem["detail"]
        r = await client.put(f"{HOME}/scripts/{script['id']}/uses", json={"turf_ids": [987654]},
                             headers=world.headers("organizer"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "turf_ids"
        read = (await client.get(f"{HOME}/scripts/{script['id']}", headers=world.headers("organizer"))).json()
        assert read["uses"] == {"default": False, "precincts": [], "turf_ids": []} and not read["current"]["frozen"]
