"""Datasets as columns of text: CSV (with or without a header) and flat JSON / JSON Lines.

:func:`read_dataset` turns a file into :class:`Table` — ordered column names, each a NumPy bytes
array of the values' text, an empty value being missing — which :mod:`profile` profiles.
Columns without a header are named ``_c0``, ``_c1``, ... as the analyzer names them.

CSV takes a vectorised path when the file has no quotes and every row the same number of
fields (split once, reshape); otherwise Python's ``csv`` module. JSON values become text the
way a CSV writer would write them (numbers as written, ``true``/``false``, ``null`` missing,
nested objects and lists as JSON text), so both formats are typed by one rule.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from smlocal.monitor.errors import MonitorInputError

__all__ = ["Cell", "Table", "json_rows", "positional", "read_dataset", "table_from_rows", "text_of"]

Cell = tuple[str | None, str]  # (column name or None for a positional value, text)


@dataclass(frozen=True)
class Table:
    names: tuple[str, ...]
    columns: dict[str, npt.NDArray[np.bytes_]]
    rows: int


def positional(index: int) -> str:
    return f"_c{index}"


def read_dataset(path: Path, *, header: bool, dataset_format: str | None = None) -> Table:
    """Read ``path`` (CSV by default; ``.json`` / ``.jsonl`` or ``dataset_format='json'``)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise MonitorInputError(f"--dataset {path}: {error.strerror or error}") from None
    fmt = dataset_format or ("json" if path.suffix.lower() in (".json", ".jsonl") else "csv")
    table = (
        _read_json(data, path) if fmt == "json" else read_csv(data, header=header, where=str(path))
    )
    if table.rows == 0:
        raise MonitorInputError(f"--dataset {path}: no rows")
    return table


def read_csv(data: bytes, *, header: bool, where: str) -> Table:
    data = data.removeprefix(b"\xef\xbb\xbf").replace(b"\r\n", b"\n")
    if not data.endswith(b"\n"):
        data += b"\n"
    names: list[str] | None = None
    if header:
        first, _, data = data.partition(b"\n")
        names = [n.strip() for n in next(csv.reader([first.decode("utf-8", "replace")]), [])]
    fast = None if b'"' in data else _split_fast(data)
    matrix = fast if fast is not None else _split_csv(data, where)
    width = matrix.shape[1] if matrix.ndim == 2 else 0
    if names is None:
        names = [positional(i) for i in range(width)]
    if header and width and len(names) != width:
        raise MonitorInputError(f"{where}: the header has {len(names)} columns, the rows {width}")
    _check_unique(names, where)
    columns = {n: np.ascontiguousarray(matrix[:, i]) for i, n in enumerate(names)}
    return Table(tuple(names), columns, int(matrix.shape[0]))


def _split_fast(data: bytes) -> npt.NDArray[np.bytes_] | None:
    lines = data.split(b"\n")
    lines.pop()  # after the final newline
    lines = [line for line in lines if line]
    if not lines:
        return np.empty((0, 0), dtype="S1")
    commas = lines[0].count(b",")
    if any(line.count(b",") != commas for line in lines):
        return None
    fields = b",".join(lines).split(b",")
    return np.array(fields, dtype=np.bytes_).reshape(len(lines), commas + 1)


def _split_csv(data: bytes, where: str) -> npt.NDArray[np.bytes_]:
    rows = [r for r in csv.reader(io.StringIO(data.decode("utf-8", "replace"))) if r]
    if not rows:
        return np.empty((0, 0), dtype="S1")
    width = max(len(r) for r in rows)
    ragged = next((i for i, r in enumerate(rows) if len(r) != width), None)
    if ragged is not None:
        raise MonitorInputError(
            f"{where}: row {ragged + 1} has {len(rows[ragged])} fields, others {width}"
        )
    return np.array([[v.encode() for v in r] for r in rows], dtype=np.bytes_)


def _check_unique(names: Sequence[str], where: str) -> None:
    seen: set[str] = set()
    for name in names:
        if not name:
            raise MonitorInputError(f"{where}: a column has an empty name")
        if name in seen:
            raise MonitorInputError(f"{where}: column {name!r} appears twice")
        seen.add(name)


def _read_json(data: bytes, path: Path) -> Table:
    text = data.decode("utf-8", "replace").strip()
    try:
        values: list[Any] = [json.loads(text)] if text.startswith("[") else []
    except json.JSONDecodeError:
        values = []
    if not values:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                values.append(json.loads(line))
            except json.JSONDecodeError as error:
                raise MonitorInputError(
                    f"{path}: line {number} is not JSON ({error.msg})"
                ) from None
    rows: list[list[Cell]] = []
    for value in values:
        rows.extend(json_rows(value))
    return table_from_rows(rows, where=str(path))


def text_of(value: Any) -> str:
    """A JSON value as the text a CSV would hold (``None`` → missing)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value).lower()
    if isinstance(value, int | str):
        return str(value)
    return json.dumps(value, separators=(",", ":"))


def json_rows(value: Any) -> list[list[Cell]]:
    """One JSON document as rows: an object of scalars is a row; a list (or an object with one
    list member, e.g. ``{"instances": [...]}``) holds rows, each an object or a list."""
    if isinstance(value, dict):
        if len(value) == 1:
            (only,) = value.values()
            if isinstance(only, list) and only and all(isinstance(r, dict | list) for r in only):
                return [_row(r) for r in only]
        return [_row(value)]
    if isinstance(value, list):
        if value and all(isinstance(r, dict | list) for r in value):
            return [_row(r) for r in value]
        return [_row(value)]
    return [[(None, text_of(value))]]


def _row(value: Any) -> list[Cell]:
    if isinstance(value, dict):
        return [(str(k), text_of(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [(None, text_of(v)) for v in value]
    return [(None, text_of(value))]


def table_from_rows(rows: Iterable[list[Cell]], *, where: str) -> Table:
    """Columns from rows of cells; a positional cell is named ``_c<index in its row>``; a
    column a row lacks is missing in that row."""
    order: dict[str, int] = {}
    collected: list[dict[str, str]] = []
    for cells in rows:
        row: dict[str, str] = {}
        for index, (name, text) in enumerate(cells):
            key = name if name is not None else positional(index)
            row[key] = text
            order.setdefault(key, len(order))
        collected.append(row)
    names = tuple(order)
    columns = {
        n: np.array([r.get(n, "").encode() for r in collected], dtype=np.bytes_) for n in names
    }
    if not names and collected:
        raise MonitorInputError(f"{where}: the records hold no values")
    return Table(names, columns, len(collected))
