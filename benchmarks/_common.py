"""What every benchmark shares: the row it reports and the table that shows rows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

COLUMNS = ("benchmark", "metric", "value", "unit", "target", "met")

Row = dict[str, Any]


def row(benchmark: str, metric: str, value: float, unit: str, target: str = "", met: bool = True) -> Row:
    """One figure: *target* is empty for a figure shown for context, *met* says whether it was reached."""
    return {
        "benchmark": benchmark,
        "metric": metric,
        "value": value,
        "unit": unit,
        "target": target,
        "met": met,
    }


def print_table(rows: Sequence[Row]) -> None:
    """Print *rows* as an aligned text table."""
    print(format_table(rows))


def format_value(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{value:,.3f}".rstrip("0").rstrip(".")


def _verdict(row: Row) -> str:
    if not row["target"]:
        return ""
    return "yes" if row["met"] else "NO"


def cells(row: Row) -> list[str]:
    return [
        row["benchmark"],
        row["metric"],
        format_value(row["value"]),
        row["unit"],
        row["target"],
        _verdict(row),
    ]


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    table = [list(COLUMNS), *(cells(row) for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(COLUMNS))]
    right = {2}
    lines = []
    for index, line in enumerate(table):
        padded = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
        if index == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
