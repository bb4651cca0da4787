"""Writing a report's tables to a file while they are read: CSV, JSON, JSON Lines, PDF.

Rows go from the database cursor to the file one at a time; nothing holds a whole table. CSV and
JSON Lines put one table in one file, several tables in a zip with one file each.
"""
from __future__ import annotations

import csv
import datetime
import decimal
import io
import itertools
import json
import uuid
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, BinaryIO

from django.conf import settings
from django.template.loader import render_to_string

from reports.models import ReportFormat
from reports.pdf import pdf_write
from reports.registry import Chart, ReportData, Table

# on_rows(table index, rows written in that table so far): called every PROGRESS_EVERY rows and at a table's end.
RowsCallback = Callable[[int, int], None]
PROGRESS_EVERY = 5000

# A spreadsheet runs a cell starting with one of these as a formula: CSV cells of text get a leading '.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Written:
    rows: int
    extension: str
    content_type: str


def write_report(data: ReportData, *, fmt: str, out: BinaryIO, meta: dict[str, Any], on_rows: RowsCallback,
                 described: Sequence[tuple[str, str]] = (),
                 render_pdf: Callable[[str, BinaryIO], None] | None = None) -> Written:
    """Write `data` as `fmt` to the binary file `out`; `meta` (type, title, tenant, time, parameters)
    heads the JSON document, a zip's manifest and the PDF, which states the parameters as `described`."""
    if fmt == ReportFormat.PDF:
        rows = _write_pdf(data, out=out, meta=meta, described=described, on_rows=on_rows,
                          render=render_pdf or pdf_write)
        return Written(rows, "pdf", "application/pdf")
    if fmt == ReportFormat.JSON:
        return Written(_write_json(data, out=out, meta=meta, on_rows=on_rows), "json", "application/json")
    write_table = {ReportFormat.CSV: _write_csv, ReportFormat.JSONL: _write_jsonl}[fmt]
    extension = {ReportFormat.CSV: "csv", ReportFormat.JSONL: "jsonl"}[fmt]
    if len(data.tables) == 1:
        with _text(out) as text:
            rows = write_table(data.tables[0], text, lambda count: on_rows(0, count))
        content_type = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8"}[extension]
        return Written(rows, extension, content_type)
    rows = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("manifest.json", json.dumps({**meta, "tables": [t.name for t in data.tables]},
                                                     default=_json_default, indent=2))
        for index, table in enumerate(data.tables):
            with archive.open(f"{table.name}.{extension}", "w", force_zip64=True) as member, _text(member) as text:
                rows += write_table(table, text, lambda count, index=index: on_rows(index, count))
    return Written(rows, "zip", "application/zip")


@contextmanager
def _text(binary: BinaryIO) -> Iterator[io.TextIOWrapper]:
    text = io.TextIOWrapper(binary, encoding="utf-8", newline="", write_through=False)
    try:
        yield text
    finally:
        text.flush()
        text.detach()  # the caller owns (and closes) the binary file


def _counted(rows: Iterable[Sequence[Any]], on_rows: Callable[[int], None]) -> Iterator[Sequence[Any]]:
    on_rows(0)
    count = 0
    for count, row in enumerate(rows, 1):
        yield row
        if count % PROGRESS_EVERY == 0:
            on_rows(count)
    on_rows(count)


def _write_csv(table: Table, text: io.TextIOBase, on_rows: Callable[[int], None]) -> int:
    writer = csv.writer(text)
    writer.writerow(table.columns)
    written = 0

    def counting(count: int) -> None:
        nonlocal written
        written = count
        on_rows(count)

    writer.writerows(map(_csv_row, _counted(table.rows(), counting)))
    return written


def _csv_row(row: Sequence[Any]) -> list[Any]:
    # By the cell's exact type: this runs for every cell of a million-row export. Types not listed
    # (None, numbers, UUIDs, Decimals) the csv module writes as they are.
    return [convert(value) if (convert := _CSV_CONVERTERS.get(type(value))) else value for value in row]


def _csv_text(value: str) -> str:
    return "'" + value if value[:1] in FORMULA_STARTS else value


FORMULA_STARTS = frozenset(FORMULA_PREFIXES)
_CSV_CONVERTERS: dict[type, Callable[[Any], Any]] = {
    str: _csv_text,
    datetime.datetime: datetime.datetime.isoformat,
    datetime.date: datetime.date.isoformat,
    datetime.time: datetime.time.isoformat,
    datetime.timedelta: lambda value: round(value.total_seconds(), 3),
    dict: lambda value: json.dumps(value, default=_json_default, separators=(",", ":")),
    list: lambda value: json.dumps(value, default=_json_default, separators=(",", ":")),
}


def _write_jsonl(table: Table, text: io.TextIOBase, on_rows: Callable[[int], None]) -> int:
    written = 0

    def counting(count: int) -> None:
        nonlocal written
        written = count
        on_rows(count)

    columns = list(table.columns)
    dumps = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":")).encode
    text.writelines(dumps(dict(zip(columns, row))) + "\n" for row in _counted(table.rows(), counting))
    return written


def _write_json(data: ReportData, *, out: BinaryIO, meta: dict[str, Any], on_rows: RowsCallback) -> int:
    """One JSON document: {"report": meta, "summary": {...}, "tables": {name: [row objects]}},
    written row by row."""
    dumps = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":")).encode
    rows = 0
    with _text(out) as text:
        text.write('{"report":' + dumps(meta) + ',"summary":' + dumps(dict(data.summary)) + ',"tables":{')
        for index, table in enumerate(data.tables):
            columns = list(table.columns)
            text.write(("," if index else "") + dumps(table.name) + ":[")
            count = 0
            for count, row in enumerate(_counted(table.rows(), lambda n, index=index: on_rows(index, n)), 1):
                text.write(("," if count > 1 else "") + dumps(dict(zip(columns, row))))
            rows += count
            text.write("]")
        text.write("}}\n")
    return rows


def _plain(value: Any) -> Any:
    """A JSON-ready form of a cell: dates in ISO 8601, durations in seconds, ids as strings."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return round(value.total_seconds(), 3)
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, dict | list):
        return json.dumps(value, default=_json_default, separators=(",", ":"))
    return str(value)


def _json_default(value: Any) -> Any:
    if isinstance(value, dict | list):  # never reached: the encoder walks these itself
        return value
    return _plain(value)


# --- PDF -------------------------------------------------------------------------------------------------


@dataclass
class PdfTable:
    title: str
    columns: Sequence[str]
    rows: list[list[str]]
    more: bool  # rows beyond REPORTS_PDF_MAX_ROWS were left out


def _write_pdf(data: ReportData, *, out: BinaryIO, meta: dict[str, Any], described: Sequence[tuple[str, str]],
               on_rows: RowsCallback, render: Callable[[str, BinaryIO], None]) -> int:
    limit = settings.REPORTS_PDF_MAX_ROWS
    tables, rows = [], 0
    for index, table in enumerate(data.tables):
        shown = [[_pdf_cell(value) for value in row] for row in itertools.islice(table.rows(), limit + 1)]
        more = len(shown) > limit
        tables.append(PdfTable(table.title, [column_title(column) for column in table.columns], shown[:limit], more))
        rows += len(shown[:limit])
        on_rows(index, len(shown[:limit]))
    html = render_to_string("reports/report.html", {
        "wide": max((len(table.columns) for table in tables), default=0) > 8,
        "meta": meta, "described": described, "summary": [(label, _pdf_cell(value)) for label, value in data.summary],
        "chart": chart_geometry(data.chart) if data.chart else None, "tables": tables, "row_limit": limit,
    })
    render(html, out)
    return rows


# Column names a PDF prints otherwise than capitalized with spaces (CSV and JSON keep the names as they are).
_TITLES = {"id": "ID", "url": "URL", "pct": "%", "ms": "(ms)", "seconds": "(s)", "at": ""}


def column_title(name: str) -> str:
    """A data column's name as a person reads it: "success_rate_pct" is "Success rate %", "created_at" is
    "Created", "duration_ms" is "Duration (ms)"."""
    words = [_TITLES.get(word, word) for word in name.split("_")]
    title = " ".join(word for word in words if word).strip() or name
    return title[0].upper() + title[1:]


def _pdf_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if not isinstance(value, str):
        return _pdf_cell(_plain(value))
    text = value
    return text if len(text) <= 300 else text[:299] + "…"


COLOURS = ["#2f7d4f", "#c0392b", "#7f8c8d", "#2c6fbb", "#d68910"]


def chart_geometry(chart: Chart, *, width: int = 680, height: int = 200) -> dict[str, Any]:
    """Rectangles and labels for a stacked bar chart, in SVG user units; the template draws them."""
    left, bottom, top = 40, 36, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    totals = [sum(values[i] for _, values in chart.series) for i in range(len(chart.labels))]
    peak = max(totals, default=0) or 1
    slot = plot_w / max(len(chart.labels), 1)
    every = max(1, int(len(chart.labels) / (plot_w / 48)) + 1)  # a label every ~48 units
    bars = []
    for i, label in enumerate(chart.labels):
        y = top + plot_h
        segments = []
        for (name, values), colour in zip(chart.series, itertools.cycle(COLOURS)):
            h = plot_h * values[i] / peak
            y -= h
            segments.append({"y": round(y, 2), "height": round(h, 2), "colour": colour})
        bars.append({"x": round(left + i * slot + slot * 0.1, 2), "width": round(max(slot * 0.8, 0.5), 2),
                     "segments": segments, "label": label if i % every == 0 else "",
                     "label_x": round(left + i * slot + slot / 2, 2)})
    legend = [{"name": name, "colour": colour} for (name, _), colour in zip(chart.series, itertools.cycle(COLOURS))]
    return {"title": chart.title, "width": width, "height": height, "bars": bars, "legend": legend,
            "peak": _pdf_cell(peak), "unit": chart.unit, "left": left, "top": top, "base": top + plot_h,
            "label_y": top + plot_h + 14, "right": width - 8}
