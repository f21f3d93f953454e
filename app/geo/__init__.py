"""Pure geometry: shapely, numpy and pyproj in and out; no database, settings, HTTP or I/O."""
