"""Match buildings to the street segments (blocks) they front."""

import numpy as np
import shapely
from numpy.typing import NDArray

__all__ = ["house_number", "match_streets", "street_name"]

# A building farther than this from every centreline fronts no street we know of.
MAX_STREET_M = 150.0
# Being in the segment's address range counts as this many metres nearer.
RANGE_BONUS_M = 40.0


def street_name(name: str) -> str:
    """The form street names are compared in: upper case, single spaces.

    Examples
    --------
    >>> street_name("  Cambridge   St ")
    'CAMBRIDGE ST'
    """
    return " ".join(name.upper().split())


def house_number(number: str) -> int:
    """The leading whole number of a house number, or -1.

    Examples
    --------
    >>> [house_number(n) for n in ("232-238", "12A", "1/2", "", "B")]
    [232, 12, 1, -1, -1]
    """
    digits = ""
    for ch in number.strip():
        if not ch.isdigit():
            break
        digits += ch
    return int(digits) if digits else -1


def match_streets(
    x: NDArray[np.float64],
    y: NDArray[np.float64],
    names: NDArray[np.int64],
    numbers: NDArray[np.int64],
    segments: NDArray[np.object_],
    segment_names: NDArray[np.int64],
    ranges: NDArray[np.int64],
) -> tuple[NDArray[np.int64], NDArray[np.int8], NDArray[np.float64]]:
    """For each building, the segment it fronts, the side it is on and where along the segment.

    Coordinates are metric (`x`, `y` and `segments` in one projected CRS). `names` and `segment_names`
    are codes of normalised street names, `numbers` house numbers (-1 if none) and `ranges` each
    segment's `(l_from, l_to, r_from, r_to)` (-1 where none). A building goes to the nearest segment of its
    own street, a segment whose address range holds its number counting as `RANGE_BONUS_M` nearer; a
    building whose street isn't near goes to the nearest segment of any name within `MAX_STREET_M`, and
    one with nothing near gets -1. Side is +1 left of the segment's direction, -1 right, 0 unknown; the
    position is metres from the segment's start.

    Examples
    --------
    >>> road = np.array([shapely.LineString([(0, 0), (100, 0)]), shapely.LineString([(0, 50), (100, 50)])])
    >>> seg, side, pos = match_streets(np.array([30.0, 60.0, 10.0]), np.array([10.0, 45.0, -10.0]),
    ...     np.array([0, 0, 7]), np.array([5, 8, -1]), road, np.array([0, 1]), np.full((2, 4), -1))
    >>> seg.tolist(), side.tolist(), pos.round().tolist()
    ([0, 0, 0], [1, 1, -1], [30.0, 60.0, 10.0])
    """
    n = len(x)
    segment = np.full(n, -1, dtype=np.int64)
    side = np.zeros(n, dtype=np.int8)
    position = np.zeros(n)
    if n == 0 or len(segments) == 0:
        return segment, side, position
    points = shapely.points(x, y)
    tree = shapely.STRtree(segments)
    b, s = tree.query(points, predicate="dwithin", distance=MAX_STREET_M)
    distance = shapely.distance(points[b], segments[s])
    same = names[b] == segment_names[s]
    low_l, high_l = np.minimum(ranges[s, 0], ranges[s, 1]), np.maximum(ranges[s, 0], ranges[s, 1])
    low_r, high_r = np.minimum(ranges[s, 2], ranges[s, 3]), np.maximum(ranges[s, 2], ranges[s, 3])
    num = numbers[b]
    in_range = (num >= 0) & (((low_l >= 0) & (low_l <= num) & (num <= high_l))
                             | ((low_r >= 0) & (low_r <= num) & (num <= high_r)))
    # Own street first, then nearest (less the range bonus), then the lower segment index for determinism.
    score = distance - RANGE_BONUS_M * in_range
    order = np.lexsort((s, score, ~same, b))
    first = order[np.unique(b[order], return_index=True)[1]]
    segment[b[first]] = s[first]

    found = np.flatnonzero(segment >= 0)
    lines, pts = segments[segment[found]], points[found]
    position[found] = shapely.line_locate_point(lines, pts)
    here = shapely.line_interpolate_point(lines, position[found])
    ahead = shapely.line_interpolate_point(lines, position[found] + 1.0)
    behind = shapely.line_interpolate_point(lines, position[found] - 1.0)
    tx = shapely.get_x(ahead) - shapely.get_x(behind)
    ty = shapely.get_y(ahead) - shapely.get_y(behind)
    cross = tx * (y[found] - shapely.get_y(here)) - ty * (x[found] - shapely.get_x(here))
    side[found] = np.sign(cross).astype(np.int8)
    return segment, side, position
