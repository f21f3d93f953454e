"""CSV a spreadsheet opens safely: every CSV the project writes goes through here.

A text cell starting with `=`, `+`, `-`, `@`, a tab or a carriage return is a formula to Excel, LibreOffice and
Google Sheets (OWASP "CSV injection"): a canvasser's note `=HYPERLINK(...)` or a voter-file name would run on the
organizer's machine. Such a cell gets a leading `'`, which spreadsheets show as text; numbers stay numbers.
"""

import csv
from collections.abc import Iterable, Mapping
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: Any) -> Any:
    """The value as a spreadsheet may read it: text that would start a formula gets a leading `'`."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


class DictWriter(csv.DictWriter):  # type: ignore[type-arg]
    """csv.DictWriter whose text cells are formula-safe."""

    def writerow(self, rowdict: Mapping[str, Any]) -> Any:
        return super().writerow({key: cell(value) for key, value in rowdict.items()})

    def writerows(self, rowdicts: Iterable[Mapping[str, Any]]) -> None:
        for row in rowdicts:
            self.writerow(row)

