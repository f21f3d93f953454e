"""What an import file is, told by its content, and the one way GDAL may open it.

GDAL left to itself picks a driver by content and name, and some of its formats name other files or URLs: an OGR
VRT uploaded as a voter file read the server's `.env`, a GeoJSON `crs` link makes it fetch a URL. So an import
accepts only CSV, GeoJSON, GeoPackage and zipped Shapefiles, told apart by their first bytes, and opens each with
its driver forced by GDAL's `DRIVER:path` syntax (the CSV, GeoJSON and GPKG drivers; a Shapefile is opened only
after its magic number is checked, where no other driver claims it). Every path handed to GDAL is one this module
chose, never text from a file, so no `/vsicurl/` or `/vsizip/` name can reach it. What a format could still point
at is checked in Python first: a GeoJSON's `crs`, a GeoPackage's SQL, a zip's members.
"""

import re
import sqlite3
import stat
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path, PurePosixPath

import orjson

from app.errors import BadFile, TooLarge, UnsupportedMedia


class Format(StrEnum):
    csv = "CSV"
    geojson = "GeoJSON"
    gpkg = "GeoPackage"
    shapefile = "zipped Shapefile"


TABLES = (Format.csv, Format.geojson, Format.gpkg, Format.shapefile)
# CSV carries no geometry (nor CRS): precincts and streets need one.
SHAPES = (Format.geojson, Format.gpkg, Format.shapefile)

SNIFF_BYTES = 64 * 1024
SHAPEFILE_MAGIC = b"\x00\x00\x27\x0a"
# application_id values of GeoPackage 1.2+ ("GPKG") and of 1.0/1.1 ("GP10", "GP11").
GPKG_IDS = {0x47504B47, 0x47503130, 0x47503131}
# A zipped Shapefile holds a handful of files and unpacks to a few times its size (a .dbf's padding compresses
# best); past these it is no Shapefile but a zip bomb. Small zips may unpack to ZIP_FREE_BYTES whatever the ratio.
ZIP_MAX_MEMBERS = 100
ZIP_MAX_BYTES = 2 * 1024 * 1024 * 1024
ZIP_MAX_RATIO = 200
ZIP_FREE_BYTES = 16 * 1024 * 1024
SHAPEFILE_PARTS = {".shp", ".shx", ".dbf", ".prj", ".cpg"}
# Named CRSs only (urn:ogc:def:crs:EPSG::2249, EPSG:4326, OGC:CRS84): a `link` or a free name may be a URL or path.
CRS_NAME = re.compile(r"(urn:ogc:def:crs:[A-Za-z0-9]+:[0-9.]*:[A-Za-z0-9]+|EPSG:[0-9]+|OGC:CRS84)")
# Triggers a GeoPackage carries by the standard (rtree spatial index, tile matrix and metadata checks) or that GDAL
# writes (feature counts). They fire only on writes, and GDAL opens the file read-only; anything else is refused.
STANDARD_TRIGGER = re.compile(r"rtree_.+_(insert|update[1-7]?|delete)|gpkg_(tile_matrix|metadata)_\w+"
                              r"|trigger_(insert|delete)_feature_count_.+", re.S)
# A virtual table a GeoPackage may hold: its spatial index, `CREATE VIRTUAL TABLE name USING rtree(...)`.
# Read token by token from the start, comments only where SQL allows blanks (so none can hide another module).
# A comment ends at its first `*/`, as in SQL: one that could run on to a later one made every run of comments
# readable in exponentially many ways, and a crafted file's schema held a thread for ever.
_GAP = r"(?:\s|/\*(?:[^*]|\*(?!/))*\*/|--[^\n]*\n)+"
RTREE_TABLE = re.compile(rf"(?:{_GAP})?CREATE{_GAP}VIRTUAL{_GAP}TABLE{_GAP}(?:IF{_GAP}NOT{_GAP}EXISTS{_GAP})?"
                         rf"(?:\w+|\"[^\"]+\"|`[^`]+`|\[[^\]]+\]){_GAP}USING{_GAP}rtree(?:{_GAP})?\(", re.I | re.S)
# Absolute paths in GDAL's messages (the upload's temporary folder): a caller is told about their file, not ours.
ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s'\"/]+/)+[^\s'\":]*")


def names(formats: tuple[Format, ...]) -> list[str]:
    return [str(f) for f in formats]


def sniff(path: Path) -> Format | None:
    """The format the file's first bytes say it is, or None for anything else (XML, a VRT, binary)."""
    with path.open("rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return Format.shapefile
    if head.startswith(b"SQLite format 3\x00"):
        return Format.gpkg
    if head.startswith(SHAPEFILE_MAGIC) and path.suffix.lower() == ".shp":
        return Format.shapefile  # a .shp beside its .shx and .dbf, on the command line
    if _binary(head):
        return None
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    if text.startswith(b"{"):
        return Format.geojson
    if text.startswith((b"<", b"[")):
        return None  # XML (a GDAL VRT, GML, KML) or a JSON array: no format an import reads
    return Format.csv


def _binary(head: bytes) -> bool:
    # Text has few control bytes (a stray NUL in a CSV row is the row's problem, reported as such); images,
    # archives and random bytes have one in eight or so.
    controls = sum(head.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    return controls > len(head) // 20


def scrub(message: str, path: Path, label: str) -> str:
    """GDAL's message with the file's server path replaced by the caller's name for it, and any other path cut."""
    message = message.replace(str(path), label).replace(str(path.parent), "")
    return ABSOLUTE_PATH.sub("(a file)", message)


@contextmanager
def gdal_path(path: Path, label: str, accept: tuple[Format, ...]) -> Iterator[str]:
    """The name to hand pyogrio for the file, its format checked and its driver forced.

    Raises UnsupportedMedia for a format `accept` lacks, BadFile for a file that is not what it claims to be.
    """
    found = sniff(path)
    listed = ", ".join(names(accept))
    if found not in accept:
        what = f"is {found}, which this import does not read" if found else "is in no format an import reads"
        raise UnsupportedMedia(f"{label}: the file {what}; accepted: {listed}", accepted=names(accept))
    if found is Format.csv:
        yield f"CSV:{path}"
    elif found is Format.geojson:
        _check_geojson(path, label)
        yield f"GeoJSON:{path}"
    elif found is Format.gpkg:
        _check_geopackage(path, label, accept)
        yield f"GPKG:{path}"
    elif _is_shp(path):
        yield str(path)
    else:
        with tempfile.TemporaryDirectory(prefix="doorstep-shapefile-") as folder:
            yield str(_unzip_shapefile(path, Path(folder), label))


def _check_geojson(path: Path, label: str) -> None:
    try:
        data = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise BadFile(f"{label}: not valid JSON ({str(exc).split(':')[0]})") from exc
    if not isinstance(data, dict):
        raise BadFile(f"{label}: GeoJSON must be an object")
    # GDAL reads a `crs` member on the collection, on a geometry, or on a geometry inside a collection: every
    # object's is checked, iteratively (a file may nest deeper than Python's recursion).
    stack: list[object] = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "crs" in item:
                _check_crs(item["crs"], label)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(v for v in item if isinstance(v, dict | list))


def _check_crs(crs: object, label: str) -> None:
    if crs is None:
        return
    # GDAL fetches a `link` CRS's URL and tries a free `name` as a file or URL: only a plain CRS name passes.
    properties = crs.get("properties") if isinstance(crs, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if isinstance(crs, dict) and crs.get("type") == "EPSG" and isinstance(properties, dict) \
            and type(properties.get("code")) is int:
        return  # the 2008 GeoJSON spelling, {"type": "EPSG", "properties": {"code": 2249}}
    if not isinstance(crs, dict) or crs.get("type") != "name" or not isinstance(name, str) \
            or not CRS_NAME.fullmatch(name):
        raise BadFile(f"{label}: crs: only a named CRS is read, like "
                      '{"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::4326"}}')


def _check_geopackage(path: Path, label: str, accept: tuple[Format, ...]) -> None:
    """Refuse a SQLite file that is no plain GeoPackage: views and triggers are SQL that GDAL would run."""
    try:
        # Read-only and immutable: no journal, WAL or lock file is made or touched beside it.
        with sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True) as db:
            (application_id,), = db.execute("PRAGMA application_id").fetchall()
            schema = db.execute("SELECT type, name, coalesce(sql, '') FROM sqlite_master").fetchall()
            # table_xinfo's `hidden` is 2 or 3 for a generated column, whose expression runs whenever it is read.
            generated = {name for kind, name, sql in schema if kind == "table"
                         and not re.match(r"\s*CREATE\s+VIRTUAL", sql, re.I)
                         and db.execute("SELECT 1 FROM pragma_table_xinfo(?) WHERE hidden IN (2, 3)",
                                        (name,)).fetchone()}
    except sqlite3.Error as exc:
        raise BadFile(f"{label}: not a readable GeoPackage ({exc})") from exc
    if application_id not in GPKG_IDS:
        raise UnsupportedMedia(f"{label}: an SQLite file but no GeoPackage; accepted: {', '.join(names(accept))}",
                               accepted=names(accept))
    for kind, name, sql in schema:
        if kind == "view":
            raise BadFile(f"{label}: the GeoPackage holds a view ({name!r}); only tables are read")
        if kind == "trigger" and not STANDARD_TRIGGER.fullmatch(name):
            raise BadFile(f"{label}: the GeoPackage holds a trigger ({name!r}) that is not a standard one")
        if kind == "table" and re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE", sql, re.I) \
                and not RTREE_TABLE.match(sql):
            raise BadFile(f"{label}: the GeoPackage holds a virtual table ({name!r}) other than an rtree index")
        if kind == "table" and name in generated:
            raise BadFile(f"{label}: the GeoPackage's table {name!r} has generated columns, SQL run on every read")


def _extract(archive: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path, left: int, label: str) -> int:
    """Write one member to `target`, counting what it unpacks to (a member's declared size may lie)."""
    try:
        with archive.open(member) as source, target.open("wb") as out:
            while chunk := source.read(1 << 20):
                left -= len(chunk)
                if left < 0:
                    raise TooLarge(f"{label}: the zip unpacks to too much", limit=left + len(chunk))
                out.write(chunk)
    except (zipfile.BadZipFile, NotImplementedError, RuntimeError, EOFError, OSError) as exc:
        # A corrupt member, an unknown compression or a password-protected zip.
        raise BadFile(f"{label}: the zip member {member.filename[:100]!r} can't be unpacked") from exc
    return left


def _is_shp(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(4) == SHAPEFILE_MAGIC


def _unzip_shapefile(path: Path, folder: Path, label: str) -> Path:
    """Unpack a zipped Shapefile's parts into `folder` and return its .shp; other members are left unread.

    Raises BadFile for an unsafe member (absolute, `..`, a link) or no single .shp, TooLarge for a zip bomb.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadFile(f"{label}: not a readable zip file") from exc
    with archive:
        members = archive.infolist()
        if len(members) > ZIP_MAX_MEMBERS:
            raise BadFile(f"{label}: the zip holds {len(members)} members; a Shapefile needs a handful")
        parts: dict[str, zipfile.ZipInfo] = {}
        for member in members:
            name = PurePosixPath(member.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or ":" in member.filename:
                raise BadFile(f"{label}: the zip member {member.filename[:100]!r} points outside the archive")
            if stat.S_ISLNK(member.external_attr >> 16):
                raise BadFile(f"{label}: the zip member {member.filename[:100]!r} is a link")
            if member.is_dir() or name.suffix.lower() not in SHAPEFILE_PARTS or name.name.startswith("."):
                continue
            if name.name.lower() in parts:
                raise BadFile(f"{label}: the zip holds two files named {name.name!r}")
            parts[name.name.lower()] = member
        shps = [n for n in parts if n.endswith(".shp")]
        if len(shps) != 1:
            raise BadFile(f"{label}: a zipped Shapefile holds one .shp; this zip holds {len(shps)}")
        stem = shps[0].removesuffix(".shp")
        wanted = {name: member for name, member in parts.items() if PurePosixPath(name).stem == stem}
        limit = min(ZIP_MAX_BYTES, max(ZIP_FREE_BYTES, ZIP_MAX_RATIO * path.stat().st_size))
        if sum(m.file_size for m in wanted.values()) > limit:
            raise TooLarge(f"{label}: the zip unpacks to over {limit} bytes", limit=limit)
        left = limit
        for name, member in wanted.items():
            left = _extract(archive, member, folder / f"upload{PurePosixPath(name).suffix}", left, label)
    shp = folder / "upload.shp"
    if not _is_shp(shp):
        raise BadFile(f"{label}: the zip's .shp is no Shapefile")
    return shp
