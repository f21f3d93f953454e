"""Clients generated from the committed contract work, as a third-party developer would make them: a Python one
by openapi-python-client drives a canvass through the app, and a TypeScript one by openapi-typescript compiles.
Neither generator may skip an operation or warn."""

import importlib
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from uuid import uuid4

import pytest
from httpx import ASGITransport

from tests.conftest import running_app
from tests.factories import HOME, PASSWORD

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "openapi" / "openapi.json"
OPERATIONS = [op["operationId"] for ops in json.loads(SPEC.read_text())["paths"].values() for op in ops.values()]
# make test installs it in a venv of its own (Makefile): it needs an older typer than the CLI.
GENERATOR = Path(sys.prefix) / "generator" / "bin" / "openapi-python-client"
TOOLS = ROOT / "clients" / "node_modules" / ".bin"
# Where the volunteer stands when claiming: near precinct 9-1.
HERE = {"lon": -71.1303, "lat": 42.3758}


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The Python client openapi-python-client makes of the committed contract, imported as `doorstep_client`."""
    if not GENERATOR.exists():
        pytest.skip(f"openapi-python-client is not installed at {GENERATOR}: make test installs it")
    folder = tmp_path_factory.mktemp("python-client")
    config = folder / "config.yaml"
    config.write_text("post_hooks: []\n")  # its formatting of the code (ruff) isn't needed to run it
    done = subprocess.run([GENERATOR, "generate", "--path", SPEC, "--output-path", folder / "doorstep_client",
                           "--meta", "none", "--config", config], capture_output=True, text=True, timeout=300)
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "warning" not in said.lower() and "skipping" not in said.lower(), said
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module("doorstep_client")
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n.split(".")[0] == "doorstep_client"]:
            del sys.modules[name]


def api(name: str) -> ModuleType:
    """The generated module of operation `name`, from whichever tag's package holds it."""
    found = [p for p in (Path(sys.modules["doorstep_client"].__file__).parent / "api").glob(f"*/{name}.py")]
    assert len(found) == 1, f"{name}: {found}"
    return importlib.import_module(f"doorstep_client.api.{found[0].parent.name}.{name}")


def test_every_operation_has_a_python_function(generated):
    for name in OPERATIONS:
        assert callable(api(name).asyncio_detailed), name


async def test_a_canvass_through_the_generated_python_client(generated, cut_db_url, world):
    models = importlib.import_module("doorstep_client.models")
    Problem = models.Problem
    async with running_app(cut_db_url) as app:
        transport = ASGITransport(app=app)

        def client(token: str):
            return generated.AuthenticatedClient(base_url="http://test", token=token,
                                                 httpx_args={"transport": transport})

        anonymous = generated.Client(base_url="http://test", httpx_args={"transport": transport})
        token = await api("log_in").asyncio(client=anonymous, body=models.LogInForm(
            username=world.emails["canvasser"], password=PASSWORD))
        assert isinstance(token, models.Token) and token.expires_in > 0
        canvasser = client(token.access_token)

        # The claimed turf comes parsed from the first answer, a 201.
        claimed = await api("claim_turf").asyncio_detailed(HOME, client=canvasser, body=models.ClaimCreate(**HERE))
        assert claimed.status_code == 201 and isinstance(claimed.parsed, models.ClaimRead) and claimed.parsed.new
        turf_id = claimed.parsed.turf_id
        again = await api("claim_turf").asyncio_detailed(HOME, client=canvasser, body=models.ClaimCreate(**HERE))
        assert again.status_code == 200 and again.parsed.turf_id == turf_id and not again.parsed.new

        walk = await api("get_walklist").asyncio(HOME, turf_id, client=canvasser)
        assert isinstance(walk, models.WalkList) and walk.turf.id == turf_id
        doors = [h for building in walk.buildings for h in building.households][:3]
        assert len(doors) == 3 and len(walk.buildings) > 0

        # Knocks with per-knock receipts: three accepted, one rejected with a problem naming its field.
        now = datetime.now(UTC)
        knocks = [models.KnockIn(id=uuid4(), household_id=h.id, turf_id=turf_id, result="not_home",
                                 knocked_at=now - timedelta(minutes=5)) for h in doors]
        knocks.append(models.KnockIn(id=uuid4(), household_id=doors[0].id, turf_id=turf_id, result="abducted",
                                     knocked_at=now))
        batch = models.SyncBatch(device_id="phone-1", batch_id="evening-1", sent_at=now, knocks=knocks)
        synced = await api("sync_knocks").asyncio(HOME, client=canvasser, body=batch)
        assert isinstance(synced, models.SyncResult) and (synced.accepted, synced.rejected) == (3, 1)
        assert [k.status for k in synced.knocks] == ["accepted"] * 3 + ["rejected"]
        rejected = synced.knocks[3].problem
        assert isinstance(rejected, Problem) and rejected.status == 422
        assert rejected.errors[0].field == "knocks[3].result"
        resent = await api("sync_knocks").asyncio(HOME, client=canvasser, body=batch)
        assert resent.duplicate == 3 and resent.accepted == 0

        # Progress as JSON and as GeoJSON, and the results feed, read by an organizer.
        organizer = client((await api("log_in").asyncio(client=anonymous, body=models.LogInForm(
            username=world.emails["organizer"], password=PASSWORD))).access_token)
        totals = await api("get_campaign_progress").asyncio(HOME, client=organizer)
        assert isinstance(totals, models.CampaignProgress) and totals.knocks == 3 and totals.doors_attempted == 3
        turfs = await api("list_turf_progress").asyncio(HOME, client=organizer)
        assert isinstance(turfs, list) and {t.id: t.knocks for t in turfs}[turf_id] == 3
        mapped = await api("list_turf_progress_geojson").asyncio(HOME, client=organizer)
        assert isinstance(mapped, models.FeatureCollection) and len(mapped.features) == len(turfs)
        feature = next(f for f in mapped.features if f.id == turf_id)
        assert feature.geometry.type_ in ("Polygon", "MultiPolygon") and feature.properties["knocks"] == 3
        precincts = await api("list_precinct_progress_geojson").asyncio(HOME, client=organizer)
        assert isinstance(precincts, models.FeatureCollection) and len(precincts.features) > 1
        feed = await api("list_door_knocks").asyncio(HOME, client=organizer)
        assert isinstance(feed, models.KnockFeed) and len(feed.items) == 3
        assert {k.household_id for k in feed.items} == {h.id for h in doors}

        # A 409 parsed as a problem: a turf drawn over the claimed one.
        drawn = await api("get_turf").asyncio(HOME, turf_id, client=organizer)
        over = models.TurfCreate.from_dict({"name": "Over it", "geometry": drawn.geometry.to_dict()})
        conflict = await api("draw_turf").asyncio_detailed(HOME, client=organizer, body=over)
        assert conflict.status_code == 409 and isinstance(conflict.parsed, Problem)
        assert conflict.parsed.type_ == "/problems/conflict" and turf_id in [t.id for t in conflict.parsed.turfs]

        # A 410 parsed as a problem: a join code used up.
        code = await api("create_join_code").asyncio(HOME, client=organizer, body=models.JoinCodeCreate(
            role=models.Role.CANVASSER, expires_at=now + timedelta(days=1), max_uses=1))
        assert isinstance(code, models.JoinCodeRead)
        join = api("join_campaign")
        first = await join.asyncio_detailed(client=anonymous, body=models.JoinRequest(
            code=code.code, name="Ana", email="ana@volunteers.test", password="a long walk to the door"))
        assert first.status_code == 201 and first.parsed.campaign_id == "cambridge" and first.parsed.new_account
        gone = await join.asyncio_detailed(client=anonymous, body=models.JoinRequest(
            code=code.code, name="Bo", email="bo@volunteers.test", password="another long walk there"))
        assert gone.status_code == 410 and isinstance(gone.parsed, Problem)
        assert gone.parsed.type_ == "/problems/gone" and "used up" in gone.parsed.detail


@pytest.mark.skipif(not (TOOLS / "openapi-typescript").exists() or shutil.which("node") is None,
                    reason="npm's openapi-typescript is not installed: make test installs it with npm (clients/)")
def test_a_typescript_client_is_generated_and_compiles(tmp_path):
    types = tmp_path / "doorstep.d.ts"
    done = subprocess.run([TOOLS / "openapi-typescript", SPEC, "--output", types], capture_output=True, text=True,
                          timeout=120)
    said = done.stdout + done.stderr
    assert done.returncode == 0 and "warn" not in said.lower(), said
    generated = types.read_text()
    for name in OPERATIONS:
        assert f"    {name}: {{" in generated, f"{name} is not among the generated operations"
    # A program using the types as a client would: it compiles only if the answers are typed as declared.
    (tmp_path / "use.ts").write_text("""import type { operations, components } from "./doorstep";
type Ok<O extends keyof operations, S extends keyof operations[O]["responses"]> =
  operations[O]["responses"][S] extends { content: infer C } ? C : never;
const claimed: Ok<"claim_turf", 201>["application/json"] = { turf_id: 1, name: "9-1 A", precinct_id: "9-1",
  doors: 40, new: true };
const rows: Ok<"list_turf_progress", 200>["application/json"] = [];
const map: Ok<"list_turf_progress_geojson", 200>["application/geo+json"] = { type: "FeatureCollection", features: [] };
const csv: Ok<"export_door_knocks_csv", 200>["text/csv"] = "seq,id\\n";
const gone: components["schemas"]["Problem"] = { type: "/problems/gone", title: "No longer valid", status: 410,
  detail: "This join code has been used up." };
export const all = [claimed, rows, map, csv, gone];
""")
    compiled = subprocess.run([TOOLS / "tsc", "--noEmit", "--strict", "--skipLibCheck", "--target", "es2020",
                               tmp_path / "use.ts"], capture_output=True, text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stdout + compiled.stderr
