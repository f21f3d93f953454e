"""Sync keeps a canvasser's work whatever the phone sends: absurd clocks are stored and flagged, a knock of any
wrong shape is rejected alone, and no value overflows into a 500."""

from datetime import UTC, datetime

from app.turfs.models import Turf
from app.values import EARLIEST
from tests.sync.helpers import HOME, batch, doors, hold, knock, knock_count, now, send, stored


class TestClocks:
    async def test_sent_at_in_year_1_and_a_knock_in_9999_keep_the_batch(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        good = [knock(walk, 0), knock(walk, 1, "refused")]
        odd = knock(walk, 2, at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
        body = batch([*good, odd])
        body["sent_at"] = "0001-01-01T00:00:00+00:00"
        r = await send(cut_client, world, body)
        answer = r.json()
        assert r.status_code == 200, r.text
        assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (3, 0, 0)
        assert answer["clock_suspect"] and answer["clock_offset_s"] > 2000 * 365 * 86400
        received = datetime.fromisoformat(answer["received_at"])
        rows = await stored(cut_session)
        assert set(rows) == {k["id"] for k in [*good, odd]}
        for k in [*good, odd]:
            row = rows[k["id"]]
            # The offset from year 1 carries a knock made now far past its arrival: it lands on its arrival.
            assert row.clock_suspect and row.corrected_at == received
        assert rows[odd["id"]].knocked_at == datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
        turf = await cut_session.get(Turf, walk["turf"]["id"])
        assert (turf.knocks, turf.doors_attempted) == (3, 3)

    async def test_one_knock_from_a_wrong_clock_is_flagged_alone(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        good = knock(walk, 0)
        future = knock(walk, 1, at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC))
        # Year 1 east of Greenwich is no UTC time at all: the nearest sane one is kept.
        past = {**knock(walk, 2), "knocked_at": "0001-01-01T00:30:00+01:00"}
        answer = (await send(cut_client, world, batch([good, future, past]))).json()
        assert (answer["accepted"], answer["rejected"], answer["clock_suspect"]) == (3, 0, False)
        received = datetime.fromisoformat(answer["received_at"])
        rows = await stored(cut_session)
        assert not rows[good["id"]].clock_suspect
        assert abs((rows[good["id"]].corrected_at - now()).total_seconds()) < 30
        assert rows[future["id"]].clock_suspect and rows[future["id"]].corrected_at == received
        assert rows[past["id"]].clock_suspect and rows[past["id"]].knocked_at == EARLIEST
        assert rows[past["id"]].corrected_at == received

        # Sent again, the odd knocks are duplicates: their identity is what the phone sent.
        again = (await send(cut_client, world, batch([good, future, past]))).json()
        assert (again["accepted"], again["duplicate"]) == (0, 3)
        assert await knock_count(cut_session) == 3


class TestShapes:
    async def test_a_knock_of_any_wrong_shape_is_rejected_alone(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        good = [knock(walk, 0), knock(walk, 1)]
        missing = {k: v for k, v in knock(walk, 2).items() if k != "household_id"}
        huge = knock(walk, 2, household_id=2**64)
        items = [good[0], 42, "a knock", None, [1, 2], missing, huge, good[1]]
        r = await send(cut_client, world, batch(items))
        assert r.status_code == 200, r.text
        answer = r.json()
        assert (answer["accepted"], answer["duplicate"], answer["rejected"]) == (2, 0, 6)
        outcomes = answer["knocks"]
        assert [o["status"] for o in outcomes] == ["accepted"] + ["rejected"] * 6 + ["accepted"]
        fields = [[e["field"] for e in o["problem"]["errors"]] for o in outcomes[1:7]]
        assert fields[:4] == [["knocks[1]"], ["knocks[2]"], ["knocks[3]"], ["knocks[4]"]]
        assert fields[4] == ["knocks[5].household_id"] and fields[5] == ["knocks[6].household_id"]
        assert outcomes[5]["id"] == missing["id"] and outcomes[1]["id"] == ""
        assert set(await stored(cut_session)) == {k["id"] for k in good}

    async def test_ids_past_the_database_are_rejected_alone(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        good = knock(walk, 0)
        person = doors(walk)[1]["people"][0]["id"]
        odd = [knock(walk, 1, "contacted", person_id=2**63), knock(walk, 1, turf_id=2**31),
               knock(walk, 1, script_id=1, script_version=2**70)]
        answer = (await send(cut_client, world, batch([good, *odd]))).json()
        assert (answer["accepted"], answer["rejected"]) == (1, 3)
        assert [o["problem"]["errors"][0]["field"] for o in answer["knocks"][1:]] == [
            "knocks[1].person_id", "knocks[2].turf_id", "knocks[3].script_version"]
        assert person and set(await stored(cut_session)) == {good["id"]}

    async def test_a_batch_nested_900_deep_is_422_and_stores_nothing(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        nested = "[" * 900 + "]" * 900
        text = f'{{"device_id": "p", "batch_id": "b", "sent_at": "{now().isoformat()}", "knocks": [{nested}]}}'
        r = await cut_client.post(f"{HOME}/sync", content=text, headers={**world.headers("canvasser"),
                                                                         "content-type": "application/json"})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
        assert "deeper than 64" in r.json()["detail"] and walk
        assert await knock_count(cut_session) == 0
