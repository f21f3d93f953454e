"""Voter-file columns kept on purpose: only those named, typed, declared once per campaign, updated in place by a
re-import; household columns from the address file the same way. Over HTTP, as an organizer uploads them, and
from the command line."""

import random

import pandas as pd
import pytest
from sqlalchemy import func, select

from app.addresses.models import Household, Person
from app.attributes.models import Attribute, AttributeValue, PersonTag, Tag
from tests.cli import doorstep, ok
from tests.factories import DATA
from tests.test_errors import assert_problem

BASE = "/v1/campaigns/cambridge"
PEOPLE = 300
KEEP = ["party", "support_score:int", "vote_2024:bool", "registered:date", "turnout:number"]


async def voter_file(session, *, seed: int = 5) -> pd.DataFrame:
    """A synthetic voter file (seeded; no voter file is public) of PEOPLE new people at Cambridge's doors, with
    the columns a campaign keeps and one it must not (`ssn_last4`)."""
    addresses = (await session.execute(select(Household.external_id).order_by(Household.id).limit(PEOPLE))
                 ).scalars().all()
    await session.rollback()
    rng = random.Random(seed)
    return pd.DataFrame({
        "voter_id": [f"SYN-ATTR-{n}" for n in range(PEOPLE)], "address_id": addresses,
        "first_name": ["Synthetic"] * PEOPLE, "last_name": [f"Voter{n}" for n in range(PEOPLE)],
        "party": [rng.choice(["D", "R", "U", ""]) for _ in range(PEOPLE)],
        "support_score": [rng.choice(["", *map(str, range(1, 6))]) for _ in range(PEOPLE)],
        "vote_2024": [rng.choice(["Y", "N", "true", "false", ""]) for _ in range(PEOPLE)],
        "registered": [rng.choice(["2020-03-01", "11/05/2016", ""]) for _ in range(PEOPLE)],
        "turnout": [rng.choice(["0.25", "1", "", "0.875"]) for _ in range(PEOPLE)],
        "ssn_last4": [f"{rng.randrange(10000):04d}" for _ in range(PEOPLE)],
    })


def csv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


async def upload(client, world, frame: pd.DataFrame, keep: list[str], *, path: str = "people"):
    return await client.post(f"{BASE}/{path}", files={"file": ("voters.csv", csv(frame), "text/csv")},
                             data={"keep": keep}, headers=world.headers("organizer"))


async def stored(session) -> dict[tuple[str, str], tuple]:
    """Every kept value of the people the test's file made: (voter id, attribute) -> (number, text)."""
    rows = (await session.execute(
        select(Person.external_id, Attribute.name, AttributeValue.number, AttributeValue.text)
        .join(AttributeValue, AttributeValue.subject_id == Person.id)
        .join(Attribute, (Attribute.id == AttributeValue.attribute_id) & (Attribute.applies_to == "person"))
        .where(Person.external_id.like("SYN-ATTR-%")))).all()
    await session.rollback()
    return {(r[0], r[1]): (r[2], r[3]) for r in rows}


def expected(frame: pd.DataFrame) -> dict[tuple[str, str], tuple]:
    """What the file's kept columns should store, worked out here apart from the app: blanks store nothing."""
    out = {}
    for row in frame.itertuples():
        values = {"party": (None, row.party or None),
                  "support_score": (float(row.support_score), None) if row.support_score else (None, None),
                  "vote_2024": ({"Y": 1.0, "true": 1.0, "N": 0.0, "false": 0.0}.get(row.vote_2024), None),
                  "registered": (None, {"2020-03-01": "2020-03-01", "11/05/2016": "2016-11-05"}.get(row.registered)),
                  "turnout": (float(row.turnout), None) if row.turnout else (None, None)}
        out |= {(row.voter_id, name): value for name, value in values.items() if value != (None, None)}
    return out


class TestKeptColumns:
    async def test_only_the_named_columns_are_kept_typed_and_declared_once(self, client, world, session):
        frame = await voter_file(session)
        r = await upload(client, world, frame, KEEP)
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["rejected"]) == (PEOPLE, 0)
        assert await stored(session) == expected(frame)
        listed = await client.get(f"{BASE}/attributes", headers=world.headers("organizer"))
        assert [(a["name"], a["type"], a["of"], a["canvassers_see"]) for a in listed.json()] == [
            ("party", "text", "person", False), ("registered", "date", "person", False),
            ("support_score", "integer", "person", False), ("turnout", "number", "person", False),
            ("vote_2024", "boolean", "person", False)]
        # The column nobody named is nowhere: not declared, not stored, not in the answer.
        assert "ssn_last4" not in r.text and "ssn_last4" not in listed.text
        assert not await session.scalar(select(func.count()).select_from(AttributeValue).where(
            AttributeValue.text.in_(frame["ssn_last4"].tolist())))

    async def test_a_re_import_updates_in_place_and_an_unchanged_one_changes_nothing(self, client, world, session):
        frame = await voter_file(session)
        frame.loc[0:2, "support_score"] = "1"
        frame.loc[3, "party"] = "D"
        assert (await upload(client, world, frame, KEEP)).status_code == 200
        again = (await upload(client, world, frame, KEEP)).json()
        assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, PEOPLE)
        values = await session.scalar(select(func.count()).select_from(AttributeValue))
        await session.rollback()
        # Three people's scores change and one's party is blanked: four people updated, the blank's value gone.
        changed = frame.copy()
        changed.loc[0:2, "support_score"] = "9"
        changed.loc[3, "party"] = ""
        moved = (await upload(client, world, changed, KEEP)).json()
        assert (moved["created"], moved["updated"], moved["unchanged"]) == (0, 4, PEOPLE - 4)
        assert await stored(session) == expected(changed)
        assert await session.scalar(select(func.count()).select_from(AttributeValue)) == values - 1

    @pytest.mark.parametrize(("keep", "column", "value", "says"), [
        ("support_score:int", "support_score", "high", "the value is not an integer"),
        ("support_score:int", "support_score", "2.5", "the value is not an integer"),
        ("vote_2024:bool", "vote_2024", "maybe", "the value is not a boolean"),
        ("registered:date", "registered", "2024-13-40", "the value is not a date"),
        ("turnout:number", "turnout", "inf%", "the value is not a number")])
    async def test_a_value_of_the_wrong_type_refuses_the_file_naming_row_and_column(self, client, world, session,
                                                                                    keep, column, value, says):
        frame = await voter_file(session)
        frame.loc[41, column] = value
        people = await session.scalar(select(func.count()).select_from(Person))
        await session.rollback()
        body = assert_problem(await upload(client, world, frame, [keep]), 422)
        assert f"voters.csv row 42, column {column!r}: {says}" in body["detail"], body
        assert value not in body["detail"], "a voter's value is no part of the answer"
        assert await session.scalar(select(func.count()).select_from(Person)) == people, "nothing stored"
        assert not await session.scalar(select(func.count()).select_from(Attribute))

    async def test_bad_keeps_are_refused_by_name_before_the_upload(self, client, world, session):
        frame = await voter_file(session)
        for keep, says in ((["Support Score"], "a name is a lower-case letter"), (["score:money"], "the type is"),
                           (["party", "party:text"], "named twice")):
            body = assert_problem(await upload(client, world, frame, keep), 422)
            assert body["errors"][0]["field"] == "keep" and says in body["detail"], body
        body = assert_problem(await upload(client, world, frame, ["precinct_score:int"]), 422)
        assert "no column 'precinct_score' to keep" in body["detail"]
        # Declared once: kept again with another type, it is refused, naming what the campaign keeps.
        assert (await upload(client, world, frame, ["support_score:int"])).status_code == 200
        body = assert_problem(await upload(client, world, frame, ["support_score:text"]), 422)
        assert "keeps it as a person's integer, not a person's text" in body["detail"]
        assert not await session.scalar(select(func.count()).select_from(Attribute).where(
            Attribute.name == "precinct_score"))

    async def test_household_columns_from_the_address_file(self, client, world, session):
        addresses = pd.read_csv(DATA / "addresses.csv", dtype=str, keep_default_na=False).head(200)
        addresses["residential"] = ["yes" if n % 3 else "no" for n in range(len(addresses))]
        r = await upload(client, world, addresses, ["residential:bool"], path="addresses")
        assert r.status_code == 200, r.text
        assert (r.json()["created"], r.json()["updated"]) == (0, 200), "the doors stood; their kept value is new"
        rows = dict((await session.execute(
            select(Household.external_id, AttributeValue.number)
            .join(AttributeValue, AttributeValue.subject_id == Household.id)
            .join(Attribute, Attribute.id == AttributeValue.attribute_id)
            .where(Attribute.name == "residential", Attribute.applies_to == "household"))).all())
        assert rows == {a: 0.0 if n % 3 == 0 else 1.0 for n, a in enumerate(addresses["address_id"])}
        # A person's attribute of the same name can't be: one name, one meaning.
        people = await voter_file(session)
        body = assert_problem(await upload(client, world, people.assign(residential="1"), ["residential:bool"]), 422)
        assert "keeps it as a household's boolean, not a person's boolean" in body["detail"]


async def tagged(session) -> dict[str, set[tuple[str, str]]]:
    """The test's people's tags: voter id -> {(tag, source)}."""
    rows = (await session.execute(select(Person.external_id, Tag.name, PersonTag.source)
                                  .join(PersonTag, PersonTag.person_id == Person.id)
                                  .join(Tag, Tag.id == PersonTag.tag_id)
                                  .where(Person.external_id.like("SYN-ATTR-%")))).all()
    await session.rollback()
    out: dict[str, set[tuple[str, str]]] = {}
    for voter, tag, source in rows:
        out.setdefault(voter, set()).add((tag, source))
    return out


class TestTags:
    async def test_an_import_sets_its_tags_and_takes_off_what_it_no_longer_names(self, client, world, session):
        frame = (await voter_file(session)).head(4).assign(
            codes=["volunteer_prospect; yard_sign", "Yard_Sign", "", "volunteer_prospect,donor"])

        async def send(frame):
            return await client.post(f"{BASE}/people", files={"file": ("voters.csv", csv(frame), "text/csv")},
                                     data={"tags": "codes"}, headers=world.headers("organizer"))
        assert (await send(frame)).json()["created"] == 4
        assert await tagged(session) == {
            "SYN-ATTR-0": {("volunteer_prospect", "import"), ("yard_sign", "import")},
            "SYN-ATTR-1": {("yard_sign", "import")},
            "SYN-ATTR-3": {("volunteer_prospect", "import"), ("donor", "import")}}
        assert (await send(frame)).json()["unchanged"] == 4, "the same tags again change nothing"
        # An organizer's tag stays whatever the file says; the file's own tags follow the file.
        person = await session.scalar(select(Person.id).where(Person.external_id == "SYN-ATTR-1"))
        donor = await session.scalar(select(Tag.id).where(Tag.name == "donor"))
        session.add(PersonTag(tag_id=donor, person_id=person, source="organizer"))
        await session.commit()
        moved = (await send(frame.assign(codes=["yard_sign", "", "", "donor"]))).json()
        assert (moved["updated"], moved["unchanged"]) == (3, 1)
        assert await tagged(session) == {"SYN-ATTR-0": {("yard_sign", "import")},
                                         "SYN-ATTR-1": {("donor", "organizer")},
                                         "SYN-ATTR-3": {("donor", "import")}}
        assert sorted((await session.execute(select(Tag.name))).scalars()) == ["donor", "volunteer_prospect",
                                                                               "yard_sign"]
        await session.rollback()
        bad = assert_problem(await send(frame.assign(codes=["ok", "not a tag!", "", ""])), 422)
        assert "voters.csv row 2, column 'codes': a tag is a lower-case letter" in bad["detail"], bad
        missing = assert_problem(await client.post(
            f"{BASE}/people", files={"file": ("voters.csv", csv(frame), "text/csv")}, data={"tags": "nope"},
            headers=world.headers("organizer")), 422)
        assert "no column 'nope'" in missing["detail"]


class TestDoNotContact:
    async def test_the_file_marks_and_clears_only_its_own_marks_and_organizers_mark_any(self, client, world,
                                                                                        session):
        frame = (await voter_file(session)).head(4).assign(do_not_contact=["yes", "", "no", "true"])
        organizer = world.headers("organizer")

        async def send(frame):
            return await client.post(f"{BASE}/people", files={"file": ("voters.csv", csv(frame), "text/csv")},
                                     headers=organizer)

        async def marks() -> dict[str, str | None]:
            rows = (await session.execute(select(Person.external_id, Person.do_not_contact)
                                          .where(Person.external_id.like("SYN-ATTR-%")))).all()
            await session.rollback()
            return dict(rows)
        assert (await send(frame)).json()["created"] == 4
        assert await marks() == {"SYN-ATTR-0": "import", "SYN-ATTR-1": None, "SYN-ATTR-2": None,
                                 "SYN-ATTR-3": "import"}
        assert (await send(frame)).json()["unchanged"] == 4
        # An organizer marks the second; the file then says no for all: only the file's own marks are cleared.
        second = await session.scalar(select(Person.id).where(Person.external_id == "SYN-ATTR-1"))
        await session.rollback()
        r = await client.put(f"{BASE}/people/{second}/do-not-contact", json={"do_not_contact": True},
                             headers=organizer)
        assert r.status_code == 200 and (r.json()["do_not_contact"], r.json()["reason"]) == (True, "organizer")
        assert r.json()["since"]
        cleared = (await send(frame.assign(do_not_contact="no"))).json()
        assert (cleared["updated"], cleared["unchanged"]) == (2, 2)
        assert await marks() == {"SYN-ATTR-0": None, "SYN-ATTR-1": "organizer", "SYN-ATTR-2": None,
                                 "SYN-ATTR-3": None}
        # An organizer lets them be knocked again, whatever made the mark.
        r = await client.put(f"{BASE}/people/{second}/do-not-contact", json={"do_not_contact": False},
                             headers=organizer)
        assert (r.json()["do_not_contact"], r.json()["reason"], r.json()["since"]) == (False, None, None)
        bad = assert_problem(await send(frame.assign(do_not_contact=["yes", "perhaps", "", ""])), 422)
        assert "voters.csv row 2, column 'do_not_contact': the value is not a boolean" in bad["detail"], bad

    async def test_doors_from_the_address_file_and_by_an_organizer(self, client, world, session):
        addresses = pd.read_csv(DATA / "addresses.csv", dtype=str, keep_default_na=False).head(10)
        r = await upload(client, world, addresses.assign(do_not_contact=["1"] * 3 + ["0"] * 7), [],
                         path="addresses")
        assert (r.json()["updated"], r.json()["unchanged"]) == (3, 7), r.text
        marked = (await session.execute(select(Household.id, Household.external_id).where(
            Household.do_not_contact == "import"))).all()
        await session.rollback()
        assert sorted(e for _, e in marked) == sorted(addresses["address_id"][:3])
        r = await client.put(f"{BASE}/households/{marked[0][0]}/do-not-contact", json={"do_not_contact": False},
                             headers=world.headers("organizer"))
        assert r.status_code == 200 and r.json() == {"id": marked[0][0], "do_not_contact": False, "reason": None,
                                                     "since": None}
        missing = await client.put(f"{BASE}/households/999999999/do-not-contact", json={"do_not_contact": True},
                                   headers=world.headers("organizer"))
        assert_problem(missing, 404)


class TestDeclaring:
    async def test_declare_show_and_refuse_a_name_twice(self, client, world):
        organizer = world.headers("organizer")
        made = await client.post(f"{BASE}/attributes", headers=organizer,
                                 json={"name": "support_score", "type": "integer", "canvassers_see": False})
        assert made.status_code == 201 and made.json()["of"] == "person", made.text
        again = await client.post(f"{BASE}/attributes", headers=organizer, json={"name": "support_score"})
        assert assert_problem(again, 409)["type"] == "/problems/conflict"
        shown = await client.patch(f"{BASE}/attributes/{made.json()['id']}", headers=organizer,
                                   json={"canvassers_see": True})
        assert shown.status_code == 200 and shown.json()["canvassers_see"] is True
        bad = await client.post(f"{BASE}/attributes", headers=organizer, json={"name": "Score", "type": "money"})
        assert {e["field"] for e in assert_problem(bad, 422)["errors"]} == {"body.name", "body.type"}


class TestCommandLine:
    @pytest.mark.own_database  # the command writes through a connection of its own
    async def test_keep_from_the_command_line(self, db_url, session, tmp_path):
        frame = await voter_file(session)
        path = tmp_path / "voters.csv"
        path.write_bytes(csv(frame))
        report = ok(await doorstep(db_url, tmp_path, "import", "people", path, "--campaign", "cambridge",
                                   *(f"--keep={k}" for k in KEEP), "--json"))
        assert '"created": 300' in report.out
        assert await stored(session) == expected(frame)
        bad = await doorstep(db_url, tmp_path, "import", "people", path, "--campaign", "cambridge", "--keep", "x:money")
        assert bad.code == 2 and len(bad.err.strip().splitlines()) == 1 and "the type is" in bad.err, bad


pytestmark = pytest.mark.usefixtures("backend")
