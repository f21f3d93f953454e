"""Sync: knocks stored once, bad ones rejected one by one, phone clocks corrected, and who may write."""

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from app.addresses.models import Household, Person
from app.attributes.models import PersonTag, Tag
from app.db import begin_write
from app.organizing.models import TurfHistory
from app.sync import service as sync_service
from app.sync.checks import digest
from app.sync.models import ResultTally
from app.sync.schemas import KnockIn
from app.turfs.models import Turf
from app.walklists.models import WalkStop
from tests.cli import doorstep, one_json_object
from tests.sync.helpers import HOME, batch, counters, doors, hold, knock, knock_count, later, now, send, stored
from tests.test_errors import assert_problem


class TestAccepted:
    async def test_knocks_are_stored_and_counted_once(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        knocks = [knock(walk, 0, "not_home"), knock(walk, 1, "contacted", person_id=doors(walk)[1]["people"][0]["id"]),
                  knock(walk, 1, "refused", at=later(minutes=-5)), knock(walk, 2, "moved", note="New family")]
        r = await send(cut_client, world, batch(knocks))
        body = r.json()
        assert r.status_code == 200 and (body["accepted"], body["duplicate"], body["rejected"]) == (4, 0, 0)
        assert [k["id"] for k in body["knocks"]] == [k["id"] for k in knocks]
        rows = await stored(cut_session)
        assert set(rows) == {k["id"] for k in knocks}
        assert rows[knocks[3]["id"]].note == "New family" and rows[knocks[1]["id"]].contacted

        turf = await cut_session.get(Turf, walk["turf"]["id"])
        assert (turf.knocks, turf.doors_attempted, turf.doors_contacted) == (4, 3, 1)
        door = await cut_session.get(Household, doors(walk)[1]["id"])
        # The later of its two knocks is its last result, whatever order they came in.
        assert (door.knocks, door.last_result) == (2, "contacted")
        tallies = dict((await cut_session.execute(select(ResultTally.result, ResultTally.knocks).where(
            ResultTally.turf_id == turf.id))).all())
        assert tallies == {"not_home": 1, "contacted": 1, "refused": 1, "moved": 1}

        # Sent again (the phone never saw the answer): duplicates, and nothing moves.
        before = await counters(cut_session)
        again = (await send(cut_client, world, batch(knocks))).json()
        assert [k["status"] for k in again["knocks"]] == ["duplicate"] * 4 and again["accepted"] == 0
        assert await counters(cut_session) == before and await knock_count(cut_session) == 4

        # The walk list now shows the results: a partner's phone refreshing gets them.
        delta = (await cut_client.get(f"{HOME}/turfs/{walk['turf']['id']}/walklist",
                                      params={"since": walk["version"]}, headers=world.headers("canvasser"))).json()
        assert {h["id"]: h["last_result"]["result"] for b in delta["buildings"] for h in b["households"]} == {
            doors(walk)[0]["id"]: "not_home", doors(walk)[1]["id"]: "contacted", doors(walk)[2]["id"]: "moved"}

    async def test_a_changed_knock_under_a_known_id_is_a_conflict_and_the_stored_one_stands(self, cut_client,
                                                                                           cut_session, world):
        walk = await hold(cut_client, world)
        first = knock(walk, 0, "not_home")
        await send(cut_client, world, batch([first]))
        changed = {**first, "result": "contacted"}
        body = (await send(cut_client, world, batch([changed, knock(walk, 1)]))).json()
        assert [k["status"] for k in body["knocks"]] == ["rejected", "accepted"]
        problem = body["knocks"][0]["problem"]
        assert problem["status"] == 409 and problem["errors"][0]["field"] == "knocks[0].id"
        assert (await stored(cut_session))[first["id"]].result == "not_home"
        # Twice in one batch: the first stands.
        twice = knock(walk, 2)
        body = (await send(cut_client, world, batch([twice, twice, {**twice, "result": "moved"}]))).json()
        assert [k["status"] for k in body["knocks"]] == ["accepted", "duplicate", "rejected"]

    async def test_a_bad_knock_is_rejected_naming_its_field_and_the_good_ones_go_in(self, cut_client, cut_session,
                                                                                  world):
        walk = await hold(cut_client, world)
        other = await hold(cut_client, world, "organizer", index=3)
        script = (await cut_client.post(f"{HOME}/scripts", json={
            "name": "Doors", "questions": [
                {"id": "support", "text": "Support?", "kind": "single",
                 "choices": [{"id": "yes", "label": "Yes"}, {"id": "no", "label": "No"}]},
                {"id": "issues", "text": "Issues?", "kind": "multiple",
                 "choices": [{"id": "rent", "label": "Rent"}, {"id": "bus", "label": "Bus"}]}],
            "result_codes": [{"code": "wrong_address", "label": "Wrong address"}]},
            headers=world.headers("organizer"))).json()
        scripted = {"script_id": script["id"], "script_version": 1}
        good = [knock(walk, 0), knock(walk, 1, "wrong_address", answers={"support": "yes", "issues": ["bus"]},
                                      **scripted)]
        bad = [
            ({"household_id": 1}, "knocks[2].id"),
            ({**knock(walk, 0), "id": "not-a-uuid"}, "knocks[3].id"),
            ({**knock(walk, 0), "knocked_at": "2026-11-25T10:00:00"}, "knocks[4].knocked_at"),
            (knock(walk, 0, "teleported"), "knocks[5].result"),
            ({**knock(walk, 0), "household_id": 999999999}, "knocks[6].household_id"),
            ({**knock(walk, 0), "household_id": doors(other)[0]["id"]}, "knocks[7].household_id"),
            ({**knock(walk, 0), "turf_id": 999999}, "knocks[8].turf_id"),
            (knock(walk, 0, person_id=doors(other)[0]["people"][0]["id"]), "knocks[9].person_id"),
            (knock(walk, 0, answers={"support": "maybe"}, **scripted), "knocks[10].answers.support"),
            (knock(walk, 0, answers={"issues": "bus"}, **scripted), "knocks[11].answers.issues"),
            (knock(walk, 0, answers={"age": "40"}, **scripted), "knocks[12].answers.age"),
            (knock(walk, 0, script_id=script["id"], script_version=7), "knocks[13].script_version"),
            (knock(walk, 0, "wrong_address"), "knocks[14].result"),
            (knock(other, 0), "knocks[15].turf_id"),
            ({**knock(walk, 0), "lat": 123}, "knocks[16].lat"),
        ]
        body = (await send(cut_client, world, batch(good + [k for k, _ in bad]))).json()
        assert [k["status"] for k in body["knocks"]] == ["accepted"] * 2 + ["rejected"] * len(bad)
        for outcome, (_, field) in zip(body["knocks"][2:], bad, strict=True):
            assert field in [e["field"] for e in outcome["problem"]["errors"]], (field, outcome)
        assert body["knocks"][15]["problem"]["status"] == 403
        rows = await stored(cut_session)
        assert set(rows) == {k["id"] for k in good}
        assert rows[good[1]["id"]].script_version_id is not None

    async def test_limits_answer_413_with_the_limit(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        r = await send(cut_client, world, batch([knock(walk, 0) for _ in range(501)]))
        assert assert_problem(r, 413)["limit"] == 500
        r = await send(cut_client, world, batch([knock(walk, 0, note="x" * 2000) for _ in range(499)]))
        assert assert_problem(r, 413)["limit"] == 1 << 20
        r = await cut_client.post(f"{HOME}/sync", content=b"{not json", headers=world.headers("canvasser"))
        assert assert_problem(r, 422)["errors"][0]["field"] == "body"
        r = await send(cut_client, world, {"device_id": "p", "batch_id": "b", "knocks": []})
        assert assert_problem(r, 422)["errors"][0]["field"] == "body.sent_at"
        assert await knock_count(cut_session) == 0


class TestClocks:
    async def test_phones_an_hour_fast_or_slow_are_corrected(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        for skew in (timedelta(hours=1), timedelta(hours=-1)):
            # Made minutes ago (within the holding: the turf was handed out just now, give or take the grace).
            made = now() - timedelta(minutes=5)
            sent = knock(walk, 0, at=made + skew)
            body = (await send(cut_client, world, batch([sent], sent_at=now() + skew))).json()
            assert abs(body["clock_offset_s"] + skew.total_seconds()) < 5 and not body["clock_suspect"]
            row = (await stored(cut_session))[sent["id"]]
            assert abs((row.corrected_at - made).total_seconds()) < 5
            assert row.knocked_at == datetime.fromisoformat(sent["knocked_at"]) and not row.clock_suspect

    async def test_a_clock_reset_to_1970_is_corrected_and_flagged(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        epoch = datetime(1970, 1, 1, 3, 0, tzinfo=UTC)
        sent = knock(walk, 0, at=epoch - timedelta(minutes=5))
        body = (await send(cut_client, world, batch([sent], sent_at=epoch))).json()
        assert body["clock_suspect"] and body["accepted"] == 1
        row = (await stored(cut_session))[sent["id"]]
        assert row.clock_suspect and row.knocked_at.year == 1970 and row.clock_offset_s > 50 * 365 * 86400
        assert abs((row.corrected_at - (now() - timedelta(minutes=5))).total_seconds()) < 10

    async def test_a_knock_never_lands_in_the_future(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        sent = knock(walk, 0, at=later(hours=3))
        body = (await send(cut_client, world, batch([sent]))).json()
        row = (await stored(cut_session))[sent["id"]]
        assert row.corrected_at <= datetime.fromisoformat(body["received_at"])


class TestWhoMayWrite:
    async def test_a_turf_taken_back_before_the_sync_still_takes_what_was_done_while_held(self, cut_client,
                                                                                         cut_session, world):
        walk = await hold(cut_client, world)
        r = await cut_client.delete(f"{HOME}/turfs/{walk['turf']['id']}/assignments/{world.users['canvasser']}",
                                    headers=world.headers("organizer"))
        assert r.status_code == 204
        # Held from two hours ago until an hour ago.
        await begin_write(cut_session)
        for action, hours in (("assigned", 2), ("unassigned", 1)):
            await cut_session.execute(update(TurfHistory).where(
                TurfHistory.turf_id == walk["turf"]["id"], TurfHistory.action == action).values(
                at=now() - timedelta(hours=hours)))
        await cut_session.commit()
        done = knock(walk, 0, at=now() - timedelta(minutes=90))
        late = knock(walk, 1, at=now() - timedelta(minutes=30))
        before = knock(walk, 2, at=now() - timedelta(hours=3))
        body = (await send(cut_client, world, batch([done, late, before]))).json()
        assert [k["status"] for k in body["knocks"]] == ["accepted", "rejected", "rejected"]
        assert body["knocks"][1]["problem"]["errors"][0]["field"] == "knocks[1].turf_id"
        assert set(await stored(cut_session)) == {done["id"]}

    async def test_a_door_never_held_is_rejected_and_organizers_may_knock_any(self, cut_client, cut_session, world):
        walk = await hold(cut_client, world)
        other = await hold(cut_client, world, "host", index=2)
        body = (await send(cut_client, world, batch([knock(other, 0)]))).json()
        assert body["knocks"][0]["problem"]["status"] == 403
        body = (await send(cut_client, world, batch([knock(walk, 0), knock(other, 0)]), who="organizer")).json()
        assert body["accepted"] == 2
        r = await send(cut_client, world, batch([knock(walk, 0)]), who="key_all")
        assert_problem(r, 403)
        assert await knock_count(cut_session) == 2


class TestRebuild:
    @pytest.mark.own_database  # the CLI runs in a process of its own
    async def test_rebuild_agrees_with_the_counters_sync_kept(self, cut_client, cut_session, cut_db_url, world,
                                                             tmp_path):
        walk = await hold(cut_client, world)
        partner = await hold(cut_client, world, "host", index=1)
        codes = ["not_home", "contacted", "refused", "come_back", "not_home"]
        for n in range(6):
            knocks = [knock(walk, (n * 3 + i) % len(doors(walk)), codes[(n + i) % 5], at=later(minutes=-(n + i)))
                      for i in range(4)]
            knocks += [knock(partner, (n + i) % len(doors(partner)), codes[i], at=later(minutes=-i)) for i in range(3)]
            await send(cut_client, world, batch(knocks[:4]))
            await send(cut_client, world, batch(knocks[4:]), who="host")
        before = await counters(cut_session)
        assert before["turfs"] and before["tallies"]
        campaign_id = (await cut_session.get(Turf, walk["turf"]["id"])).campaign_id
        counted = await sync_service.rebuild_progress(cut_session, campaign_id)
        assert counted["knocks"] == 42 == await knock_count(cut_session)
        assert await counters(cut_session) == before
        # Counters gone wrong, on a knocked door and on doors nobody knocked, are put right.
        knocked = {h["id"] for h in doors(walk)} & {k.household_id for k in (await stored(cut_session)).values()}
        unknocked = next(h["id"] for h in doors(walk) if h["id"] not in knocked)
        nobody = await cut_session.scalar(select(Household.id).where(
            Household.campaign_id == campaign_id, Household.id.not_in(knocked | {unknocked})).limit(1))
        await cut_session.execute(update(Household).where(Household.id == unknocked).values(knocks=3))
        await cut_session.execute(update(Household).where(Household.id == nobody).values(last_result="refused"))
        await cut_session.execute(update(Household).where(Household.id == min(knocked)).values(knocks=99))
        await cut_session.execute(update(WalkStop).where(WalkStop.household_id == unknocked).values(contacted=True))
        await cut_session.execute(update(WalkStop).where(WalkStop.household_id == nobody).values(knocks=2))
        await cut_session.commit()
        await sync_service.rebuild_progress(cut_session, campaign_id)
        assert await counters(cut_session) == before
        wiped = (await cut_session.execute(select(Household.knocks, Household.first_knock_at, Household.contacted_at,
                                                  Household.last_result, Household.last_result_at)
                                           .where(Household.id.in_([unknocked, nobody])))).all()
        assert [tuple(r) for r in wiped] == [(0, None, None, None, None)] * 2
        stops = (await cut_session.execute(select(WalkStop.knocks, WalkStop.contacted).where(
            WalkStop.household_id.in_([unknocked, nobody])))).all()
        assert [tuple(r) for r in stops] == [(0, False)] * 2
        # The same from the command line; a campaign that doesn't exist gets one line and exit code 2.
        await cut_session.close()
        report = one_json_object(await doorstep(cut_db_url, tmp_path, "progress", "rebuild", "-c", "cambridge",
                                                "--json"))
        assert report == counted
        assert await counters(cut_session) == before
        wrong = await doorstep(cut_db_url, tmp_path, "progress", "rebuild", "-c", "nowhere")
        assert wrong.code == 2 and len(wrong.err.strip().splitlines()) == 1 and "Traceback" not in wrong.err


class TestDoNotContact:
    async def test_what_the_door_says_keeps_it_or_its_people_off_every_list(self, cut_client, cut_session, world):
        """A door that asks not to be knocked again is marked `refused`; `deceased` or `moved` mark the person
        spoken to, or the door when nobody is named; a mark stands once made, and a resend changes nothing."""
        walk = await hold(cut_client, world)
        homes = [d for d in doors(walk) if d["people"]]
        dead = homes[1]["people"][0]["id"]
        knocks = [knock(walk, doors(walk).index(homes[0]), "refused", do_not_contact=True),
                  knock(walk, doors(walk).index(homes[1]), "deceased", person_id=dead),
                  knock(walk, doors(walk).index(homes[2]), "moved"),
                  knock(walk, doors(walk).index(homes[3]), "refused")]
        body = batch(knocks)
        r = await send(cut_client, world, body)
        assert r.json()["accepted"] == 4, r.text

        async def marks() -> tuple[dict, dict]:
            await cut_session.rollback()
            people = dict((await cut_session.execute(select(Person.id, Person.do_not_contact).where(
                Person.do_not_contact.is_not(None)))).all())
            doors_ = dict((await cut_session.execute(select(Household.id, Household.do_not_contact).where(
                Household.do_not_contact.is_not(None)))).all())
            await cut_session.rollback()
            return people, doors_
        expected = ({dead: "deceased"}, {homes[0]["id"]: "refused", homes[2]["id"]: "moved"})
        assert await marks() == expected
        again = (await send(cut_client, world, body)).json()
        assert again["duplicate"] == 4 and await marks() == expected
        # Later knocks don't change why: the first reason stands.
        later = batch([knock(walk, doors(walk).index(homes[2]), "refused", do_not_contact=True)])
        assert (await send(cut_client, world, later)).json()["accepted"] == 1
        assert await marks() == expected

    def test_a_knock_sent_before_the_field_was_is_still_a_duplicate(self):
        """The content digest leaves `do_not_contact` out when it is false: a knock stored before the field was
        has the digest it had then (this one's, from the code before, 8f2a617), so its resend is a duplicate."""
        sent = {"id": "7f0c8f7e-52a1-4e3b-9a55-8a4f1a1c0b10", "household_id": 1, "turf_id": 2, "result": "not_home",
                "knocked_at": "2026-11-05T18:00:00+00:00"}
        assert digest(KnockIn.model_validate(sent)) == \
            "9e5cfab03bc848eb5f7cdac02fbc0faac49d27c852a502b251c456ba03e8ff25"
        assert digest(KnockIn.model_validate({**sent, "do_not_contact": True})) != digest(KnockIn.model_validate(sent))


class TestTagsFromAnswers:
    async def test_a_tagged_choice_tags_the_person_who_gave_it(self, cut_client, cut_session, world):
        """A script's choice may carry a tag (an activist code): the person spoken to who gives it is tagged, once,
        as from an answer; an answer with nobody named, or another choice, tags nobody."""
        walk = await hold(cut_client, world)
        script = (await cut_client.post(f"{HOME}/scripts", json={"name": "Volunteers", "questions": [
            {"id": "volunteer", "text": "Would you volunteer?", "kind": "single",
             "choices": [{"id": "yes", "label": "Yes", "tag": "volunteer_prospect"}, {"id": "no", "label": "No"}]},
            {"id": "help", "text": "How?", "kind": "multiple",
             "choices": [{"id": "phones", "label": "Phones", "tag": "phone_banker"},
                         {"id": "doors", "label": "Doors", "tag": "door_knocker"}, {"id": "other", "label": "Else"}]}]},
            headers=world.headers("organizer"))).json()
        assert script["current"]["questions"][0]["choices"][0]["tag"] == "volunteer_prospect"
        scripted = {"script_id": script["id"], "script_version": 1}
        homes = [d for d in doors(walk) if d["people"]]
        yes, no = homes[0]["people"][0]["id"], homes[1]["people"][0]["id"]
        body = batch([
            knock(walk, doors(walk).index(homes[0]), "contacted", person_id=yes,
                  answers={"volunteer": "yes", "help": ["doors", "other"]}, **scripted),
            knock(walk, doors(walk).index(homes[1]), "contacted", person_id=no, answers={"volunteer": "no"},
                  **scripted),
            knock(walk, doors(walk).index(homes[2]), "contacted", answers={"volunteer": "yes"}, **scripted)])
        assert (await send(cut_client, world, body)).json()["accepted"] == 3

        async def tags() -> set[tuple[int, str, str]]:
            await cut_session.rollback()
            rows = (await cut_session.execute(select(PersonTag.person_id, Tag.name, PersonTag.source)
                                              .join(Tag, Tag.id == PersonTag.tag_id))).all()
            await cut_session.rollback()
            return set(map(tuple, rows))
        assert await tags() == {(yes, "volunteer_prospect", "answer"), (yes, "door_knocker", "answer")}
        assert (await send(cut_client, world, body)).json()["duplicate"] == 3
        again = batch([knock(walk, doors(walk).index(homes[0]), "contacted", person_id=yes,
                             answers={"volunteer": "yes"}, **scripted)])
        assert (await send(cut_client, world, again)).json()["accepted"] == 1
        assert await tags() == {(yes, "volunteer_prospect", "answer"), (yes, "door_knocker", "answer")}
