"""What every benchmark shares: the registry, timing, fresh databases, and the results table and file.

A benchmark is an async function taking a `Context` and returning `Result` rows; register it with
`@benchmark("group.name")` in a module listed in `bench.MODULES`. Each row compares the project's figure
with a raw baseline measured in the same process and the same run, as their ratio.
"""

import asyncio
import gc
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "cambridge"
OUT = Path(__file__).resolve().parent / "out"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
BACKENDS = ("sqlite", "postgresql")


@dataclass
class Result:
    """One figure: the project's value, the raw baseline's, their ratio and the highest ratio aimed for.

    `goal` is a number: by default the largest acceptable `ratio` (3.0 reads "within 3x of the baseline").
    `goal_on="value"` makes it a bound on the value itself (a cut under 5 seconds), and `higher=True` a lower
    bound (compactness at least the baseline's). Only the six documented keys go to results.json.
    """

    name: str
    unit: str
    value: float
    baseline: float
    goal: float
    ratio: float = field(init=False)
    goal_on: str = "ratio"
    higher: bool = False

    def __post_init__(self) -> None:
        self.ratio = self.value / self.baseline if self.baseline > 0 else float("inf")

    @property
    def met(self) -> bool:
        measured = self.ratio if self.goal_on == "ratio" else self.value
        return measured >= self.goal if self.higher else measured <= self.goal

    @property
    def goal_text(self) -> str:
        bound = ">=" if self.higher else "<="
        if self.goal_on == "ratio":
            return f"{bound} {self.goal:g}x"
        return f"{bound} {_figure(self.goal, self.unit)}"

    def as_dict(self) -> dict[str, Any]:
        row = asdict(self)
        return {k: row[k] for k in ("name", "unit", "value", "baseline", "ratio", "goal")}


@dataclass
class Context:
    """What a run gives every benchmark: repeats, the backends to use, where PostgreSQL is, a scratch folder."""

    repeats: int
    backends: Sequence[str]
    pg_url: str
    scratch: Path
    notes: list[str] = field(default_factory=list)

    def say(self, message: str) -> None:
        """A progress line on stderr, so a long run shows where it is."""
        print(f"  {message}", file=sys.stderr, flush=True)


# A benchmark takes the run's context, and a backend name when registered with per_backend=True.
Bench = Callable[..., Awaitable[list[Result]]]


@dataclass(frozen=True)
class Registered:
    name: str
    run: Bench
    doc: str
    per_backend: bool


REGISTRY: dict[str, Registered] = {}


def benchmark(name: str, *, per_backend: bool = False) -> Callable[[Bench], Bench]:
    """Register an async benchmark under a dotted name; its result rows' names should start with it.

    With per_backend, it is called once per backend of the run, as `fn(ctx, backend)`, and a failure on one
    backend (PostgreSQL unreachable, say) is reported without losing the others' rows.
    """
    def register(fn: Bench) -> Bench:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} registered twice")
        doc = (fn.__doc__ or "").strip().splitlines()
        REGISTRY[name] = Registered(name, fn, doc[0] if doc else "", per_backend)
        return fn
    return register


def selected(filters: Sequence[str]) -> list[Registered]:
    """The registered benchmarks whose name contains any filter (all of them without filters), by name."""
    return [b for name, b in sorted(REGISTRY.items()) if not filters or any(f in name for f in filters)]


# Timing ----------------------------------------------------------------------------------------------------------

class Timings:
    """Seconds of repeated runs of one thing; `median` is what results report."""

    def __init__(self) -> None:
        self.runs: list[float] = []

    @asynccontextmanager
    async def measure(self) -> AsyncIterator[None]:
        # A collection started by the previous run's garbage must not land in this one.
        gc.collect()
        start = time.perf_counter()
        yield
        self.runs.append(time.perf_counter() - start)

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def __repr__(self) -> str:
        return "[" + ", ".join(f"{t:.3f}" for t in self.runs) + "]"


# Databases -------------------------------------------------------------------------------------------------------

def pg_dsn(pg_url: str, database: str | None = None) -> str:
    """A plain libpq DSN for asyncpg, for the URL's database or another one on the same server."""
    url = make_url(pg_url).set(drivername="postgresql")
    if database is not None:
        url = url.set(database=database)
    return url.render_as_string(hide_password=False)


async def upgrade(url: str) -> None:
    """Migrate a database to head with Alembic; its env runs its own event loop, so it goes to a thread."""
    from alembic import command
    from app.migrations import alembic_config

    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")


@asynccontextmanager
async def fresh_database(ctx: Context, backend: str) -> AsyncIterator[str]:
    """A new database migrated to head (a temp file on SQLite, CREATE DATABASE on PostgreSQL), dropped after."""
    name = f"doorstep_bench_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        path = ctx.scratch / f"{name}.db"
        url = f"sqlite+aiosqlite:///{path}"
        try:
            await upgrade(url)
            yield url
        finally:
            remove_sqlite(path)
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    admin_db = make_url(ctx.pg_url).database or "postgres"
    admin = await asyncpg.connect(pg_dsn(ctx.pg_url, admin_db))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        url = make_url(ctx.pg_url).set(drivername="postgresql+asyncpg", database=name).render_as_string(
            hide_password=False)
        await upgrade(url)
        yield url
    finally:
        admin = await asyncpg.connect(pg_dsn(ctx.pg_url, admin_db))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def sqlite_path(url: str) -> str:
    return make_url(url).database or ""


def sqlite_stamp(at: datetime) -> str:
    """A time as SQLAlchemy stores it on SQLite, for raw reads and writes: UTC text without a zone."""
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


# Output ----------------------------------------------------------------------------------------------------------

def write_results(results: Sequence[Result], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps([r.as_dict() for r in results], indent=2) + "\n")


def _figure(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"
    return f"{value:.4g} {unit}"


def print_table(results: Sequence[Result], failures: Sequence[tuple[str, str]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Doorstep vs a raw baseline (medians, same run)")
    for column in ("name", "value", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column == "name" else "right", no_wrap=True)
    for r in results:
        table.add_row(r.name, _figure(r.value, r.unit), _figure(r.baseline, r.unit), f"{r.ratio:.2f}x",
                      r.goal_text, "yes" if r.met else "[red]NO[/red]")
    for name, _ in failures:
        table.add_row(name, "[red]failed[/red]", "", "", "", "")
    # Piped output (make bench | tee) gets a width that fits the names, not rich's default 80.
    console = Console() if Console().is_terminal else Console(width=120)
    console.print(table)
    for name, error in failures:
        console.print(f"[red]{name} failed:[/red] {error}", highlight=False)


def scratch_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="doorstep-bench-")
