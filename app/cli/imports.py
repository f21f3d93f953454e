"""`doorstep import`: precincts, addresses, people and streets from files, with a report of what each row became."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app import csvsafe
from app.cli.common import (
    CampaignOpt,
    FileArg,
    JsonOpt,
    KeepOpt,
    MapOpt,
    RejectionsOpt,
    err,
    get_campaign,
    group,
    out,
    progress_bar,
    run,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    # Only for annotations: app.ingest brings pandas and pyogrio, ~0.5 s at every start.
    from app.ingest import FieldSpec, ImportReport

import_cli = group("Load precincts, addresses, people and streets.")


def write_rejections(report: ImportReport, path: Path) -> None:
    """Every rejected row as CSV, formula-safe (a row's id or reason may come from anyone's file)."""
    from app.ingest import REJECTION_COLUMNS

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csvsafe.DictWriter(f, REJECTION_COLUMNS)
        writer.writeheader()
        writer.writerows(r.__dict__ for r in report.rejected)


def show_report(report: ImportReport, as_json: bool, rejections: Path | None = None) -> None:
    if rejections is not None:
        write_rejections(report, rejections)
    if as_json:
        out.print_json(json.dumps(report.as_dict()))
        return
    extra = "".join(f", {k.replace('_', ' ')} {v}" for k, v in report.extra.items())
    out.print(f"{report.kind} from {report.file}: read {report.read}, created {report.created}, "
              f"updated {report.updated}, unchanged {report.unchanged}, snapped {report.snapped}, "
              f"rejected {len(report.rejected)}{extra}", highlight=False)
    shown = report.rejected[:25]
    for r in shown:
        where = f"row {r.row}" + (f", column {r.column}" if r.column else "")
        out.print(f"  rejected: {r.file} {where}: {r.reason}" + (f" ({r.id})" if r.id else ""), highlight=False)
    if len(report.rejected) > len(shown):
        out.print(f"  ... and {len(report.rejected) - len(shown)} more (--rejections FILE.csv writes them all)")


def _import(campaign: str, as_json: bool, work: Callable[[AsyncSession, int, Any], Awaitable[ImportReport]],
            rejections: Path | None = None) -> None:
    with progress_bar(enabled=err.is_terminal) as progress:
        async def go(session: AsyncSession) -> ImportReport:
            c = await get_campaign(session, campaign)
            return await work(session, c.id or 0, progress)
        report = run(go)
    show_report(report, as_json, rejections)


def _import_mapped(file: Path, campaign: str, mapping: list[str] | None, as_json: bool, rejections: Path | None,
                   spec: FieldSpec, service: Callable[..., Awaitable[ImportReport]],
                   keep: list[str] | None = None, **more: Any) -> None:
    """An import whose columns `--map` may rename (addresses, people, streets) and `--keep` keep (addresses,
    people); a bad `--map` or `--keep` fails first."""
    from app.attributes.service import parse_keeps
    from app.ingest import parse_map

    fields = parse_map(mapping, spec)
    kept = ({"keeps": parse_keeps(keep)} if keep else {}) | {k: v for k, v in more.items() if v is not None}
    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, mapping=fields, progress=p,
                                                         **kept), rejections)


@import_cli.command("precincts")
def import_precincts(file: FileArg, campaign: CampaignOpt, as_json: JsonOpt = False,
                     id_field: Annotated[str, typer.Option(metavar="FIELD",
                                                           help="The field holding the precinct id.")] = "precinct_id",
                     name_field: Annotated[str | None, typer.Option(
                         metavar="FIELD",
                         help="The field holding its name; without it the id is the name.")] = None,
                     rejections: RejectionsOpt = None) -> None:
    """Import precincts and their shapes.

    From GeoJSON, GeoPackage or a Shapefile, zipped or not, in any CRS (reprojected to EPSG:4326).
    """
    from app.precincts.service import import_precincts as service

    _import(campaign, as_json, lambda s, cid, p: service(s, cid, file, label=file.name, id_field=id_field,
                                                         name_field=name_field, progress=p), rejections)


@import_cli.command("addresses")
def import_addresses(file: FileArg, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                     rejections: RejectionsOpt = None, keep: KeepOpt = None) -> None:
    """Import addresses: units become households in buildings.

    From CSV, GeoJSON, GeoPackage or a zipped Shapefile.
    """
    from app.addresses.service import ADDRESS_FIELDS
    from app.addresses.service import import_addresses as service

    _import_mapped(file, campaign, mapping, as_json, rejections, ADDRESS_FIELDS, service, keep)


@import_cli.command("people")
def import_people(file: FileArg, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                  rejections: RejectionsOpt = None, keep: KeepOpt = None,
                  tags: Annotated[str | None, typer.Option(metavar="COLUMN", help=(
                      "The column listing each person's tags (activist codes), separated by ; or ,: they are set, "
                      "and those an earlier import set and this one doesn't name are taken off."))] = None) -> None:
    """Import a voter file into the households.

    Each person is linked to a household by the address file's id.
    """
    from app.addresses.service import PEOPLE_FIELDS
    from app.addresses.service import import_people as service

    _import_mapped(file, campaign, mapping, as_json, rejections, PEOPLE_FIELDS, service, keep, tags=tags)


@import_cli.command("streets")
def import_streets(file: FileArg, campaign: CampaignOpt, mapping: MapOpt = None, as_json: JsonOpt = False,
                   rejections: RejectionsOpt = None) -> None:
    """Import street centrelines for the walking order.

    Segments with node ids and address ranges; buildings are matched to the street they front.
    """
    from app.streets.service import STREET_FIELDS
    from app.streets.service import import_streets as service

    _import_mapped(file, campaign, mapping, as_json, rejections, STREET_FIELDS, service)
