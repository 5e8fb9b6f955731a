"""CSV of an analytics answer: a header row naming the row fields, then one line per JSON row.

The API streams it (``format=csv``) and ``linkedge analytics export`` writes it to a file; both
write the cells the same way, so a CSV row reads back as its JSON row (numbers and ``true`` /
``false`` as text, null as an empty cell).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

CHUNK = 500  # rows per chunk of the streamed body


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def csv_chunks(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """The CSV text, header first, in chunks of :data:`CHUNK` rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for n, row in enumerate(rows, 1):
        writer.writerow([cell(row.get(c)) for c in columns])
        if n % CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
