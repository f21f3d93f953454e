"""snapped coverages

Stored precinct and turf shapes snapped to the GeoJSON grid (six decimals) as one coverage a campaign, and wound
as RFC 7946 says (app.geo.coverage): snapped one by one, as they were, neighbours overlapped or left slivers
between them. Each turf's walk list shows its polygon, so the version of a turf whose shape moved moves; so does the
campaign's change counter, which progress ETags are made of.

Data only: downgrade leaves the snapped shapes, which the schema before holds as well.

Revision ID: 3b7e2f1c9a45
Revises: 6d154354b30d
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import shapely
import sqlalchemy as sa

from alembic import op
from app.geo.coverage import snap_coverage
from app.geo.geojson import DIGITS, texts

revision: str = '3b7e2f1c9a45'
down_revision: str | None = '6d154354b30d'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SHAPE = ("geometry", "geojson", "min_lon", "min_lat", "max_lon", "max_lat")


def _table(name: str) -> sa.TableClause:
    columns = [sa.column("id", sa.Integer), sa.column("campaign_id", sa.Integer), sa.column("geometry", sa.LargeBinary),
               sa.column("geojson", sa.Text), *(sa.column(c, sa.Float) for c in SHAPE[2:])]
    if name == "turf":
        columns += [sa.column("status", sa.String), sa.column("version", sa.Integer)]
    return sa.table(name, *columns)


def _write(table: sa.TableClause, ids: list[int], before: Sequence[shapely.Geometry],
           shapes: Sequence[shapely.Geometry], *, bump: bool) -> None:
    """Write the shapes that snapping changed (a turf's version moves only then: its phones download nothing
    anew for a shape that stands)."""
    changed = [n for n, (old, new) in enumerate(zip(before, shapes, strict=True)) if old.wkb != new.wkb]
    if not changed:
        return
    ids, shapes = [ids[n] for n in changed], [shapes[n] for n in changed]
    values = {c: sa.bindparam(f"new_{c}") for c in SHAPE}
    if bump:
        values["version"] = table.c.version + 1
    rows = []
    for row_id, shape, text in zip(ids, shapes, texts(shapes), strict=True):
        minx, miny, maxx, maxy = shape.bounds
        rows.append({"row_id": row_id, "new_geometry": shapely.to_wkb(shape), "new_geojson": text,
                     "new_min_lon": minx, "new_min_lat": miny, "new_max_lon": maxx, "new_max_lat": maxy})
    op.get_bind().execute(table.update().where(table.c.id == sa.bindparam("row_id")).values(**values), rows)


def _snap(table: sa.TableClause, campaign_id: int, *where: sa.ColumnElement[bool], partition: bool,
          together: bool = True) -> None:
    rows = op.get_bind().execute(sa.select(table.c.id, table.c.geometry)
                                 .where(table.c.campaign_id == campaign_id, *where).order_by(table.c.id)).all()
    shapes = shapely.from_wkb([r.geometry for r in rows])
    snapped = (snap_coverage(shapes, DIGITS, partition=partition) if together
               else [snap_coverage([s], DIGITS)[0] for s in shapes])
    _write(table, [r.id for r in rows], shapes, snapped, bump=table.name == "turf")


def upgrade() -> None:
    connection = op.get_bind()
    precinct, turf = _table("precinct"), _table("turf")
    campaign = sa.table("campaign", sa.column("id", sa.Integer), sa.column("changes", sa.Integer))
    for (campaign_id,) in connection.execute(sa.select(campaign.c.id).order_by(campaign.c.id)).all():
        # Precincts as the file drew them (an overlap stays); active turfs tile, so one of two overlapping turfs
        # keeps the overlap; archived turfs are no one's neighbours any more.
        _snap(precinct, campaign_id, partition=False)
        _snap(turf, campaign_id, turf.c.status == "active", partition=True)
        _snap(turf, campaign_id, turf.c.status != "active", partition=True, together=False)
    connection.execute(campaign.update().values(changes=campaign.c.changes + 1))


def downgrade() -> None:
    pass
