"""The layers of docs/architecture.md, read from the source: a module imports only what its layer may."""

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parent.parent / "app"
# Each domain's layer: a domain's services import services of its own layer or below, and the foundation
# imports nothing of a higher layer at all (derived data reaches it through app/events.py).
LAYERS = {
    "campaigns": 1, "auth": 1, "precincts": 1, "addresses": 1, "attributes": 1, "streets": 1, "audit": 1,
    "scripts": 2, "turfs": 2,
    "walklists": 3,
    "organizing": 4, "sync": 4,
    "progress": 5, "webhooks": 5,
}
FOUNDATION = 1
# What sits on top and wires the rest: nothing below may import it.
TOP = {"routers", "cli", "main", "demo", "subscribers", "openapi", "models"}
# What holds no behaviour of its own layer: a higher layer's tables and shapes may be read below it.
PLAIN = {"models", "schemas"}


def imports(source: str) -> list[tuple[int, list[str]]]:
    """Each `app.` module the source imports (anywhere in it, a function's own imports too), as name parts."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, name.split(".")[1:]) for name in names if name.startswith("app.")]
    return found


def faults(module: str, source: str) -> list[str]:
    """What is wrong with the imports of `source`, were it app's module `module` ("addresses/service.py")."""
    parts = Path(module).with_suffix("").parts
    own = parts[0] if len(parts) > 1 else None
    if parts[0] in TOP:
        return []
    out = []
    for line, target in imports(source):
        where = f"app/{module}:{line} imports app.{'.'.join(target)}"
        if target[0] in TOP:
            out.append(f"{where}, which sits on top")
        elif own not in LAYERS:  # the kernel: db, errors, events, geo, ingest ...
            if target[0] in LAYERS:
                out.append(f"{where}: the kernel imports no domain")
        elif target[0] in LAYERS and target[0] != own:
            mine, theirs = LAYERS[own], LAYERS[target[0]]
            if mine == FOUNDATION and theirs > FOUNDATION:
                out.append(f"{where}: the foundation imports nothing of a higher layer")
            elif theirs > mine and (len(target) < 2 or target[1] not in PLAIN):
                out.append(f"{where}: a service of a higher layer")
    return out


def test_every_domain_has_a_layer() -> None:
    packages = {p.name for p in APP.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages - TOP - {"geo"} == set(LAYERS)


def test_no_module_imports_above_its_layer() -> None:
    assert [f for path in sorted(APP.rglob("*.py"))
            for f in faults(str(path.relative_to(APP)), path.read_text())] == []


@pytest.mark.parametrize(("module", "source", "fault"), [
    ("addresses/service.py", "from app.walklists.service import refresh_walks", "the foundation imports nothing"),
    ("streets/service.py", "from app.turfs.models import Turf", "the foundation imports nothing"),
    ("turfs/service.py", "from app.organizing import service", "a service of a higher layer"),
    ("walklists/service.py", "import app.routers.turfs", "which sits on top"),
    ("geo/cut.py", "from app.precincts.models import Precinct", "the kernel imports no domain"),
    ("db.py", "from app.main import create_app", "which sits on top"),
])
def test_a_forbidden_import_is_caught(module: str, source: str, fault: str) -> None:
    assert any(fault in f for f in faults(module, f"x = 1\n{source}\n"))


@pytest.mark.parametrize(("module", "source"), [
    ("turfs/service.py", "from app.organizing.models import TurfHistory"),  # a higher layer's table, read
    ("sync/service.py", "from app.walklists.service import touch_households"),  # a lower layer's service
    ("walklists/handlers.py", "from app.events import TurfsCut, on"),
    ("routers/turfs.py", "from app.webhooks import service"),
])
def test_what_the_layers_allow_passes(module: str, source: str) -> None:
    assert faults(module, source) == []


# Where SQL differs by dialect (docs/architecture.md, Storage): the engine and its helpers, sync's storage, and
# the transport of live announcements (PostgreSQL's NOTIFY, or this process's streams on SQLite).
STORAGE = {"db.py", "sync/store.py", "progress/live.py"}


def test_only_storage_modules_ask_the_dialect() -> None:
    asking = [f"app/{path.relative_to(APP)}:{n}" for path in sorted(APP.rglob("*.py"))
              if str(path.relative_to(APP)) not in STORAGE
              for n, line in enumerate(path.read_text().splitlines(), 1)
              if "dialect.name" in line or "get_backend_name" in line]
    assert asking == []
