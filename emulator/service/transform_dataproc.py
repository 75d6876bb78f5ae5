"""Batch transform's DataProcessing: InputFilter, JoinSource and OutputFilter (reference §F.3).

Owns AWS's JSONPath subset and what the three settings do to one record: the InputFilter picks
what of each input record the container gets, JoinSource ``Input`` puts the input record (whole,
unfiltered) beside the container's answer for it, and the OutputFilter picks what of that is
written. Only CSV (a row is a JSON array of its fields, so only index paths apply) and JSON /
JSON Lines records are processed; with the defaults (``$``, ``None``, ``$``) nothing is parsed
and bytes pass through untouched.

AWS's JSONPath subset: ``$``, ``.name``, ``*`` (``.*`` / ``[*]``), ``['a','b']``, ``[1,-1]`` and
``[start:end]`` — whose end is **inclusive** (``$[1:4]`` is the second through fifth columns,
``$[:5]`` the first six), unlike Python's slices. One index or one name selects the element;
several, a slice or ``*`` select a list (an object for several names). Each step applies to
the value the previous one selected (no projection over a list).

Join: a JSON object input gets the answer under ``SageMakerOutput`` (a key the input may not
have); any other JSON input becomes ``{"SageMakerInput": ..., "SageMakerOutput": ...}``; a CSV
row gets the answer's columns appended (``[1,2,3]`` + ``[1]`` → ``[1,2,3,1]``). The joined
record is written in the input's format, the answer alone in the answer's.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DataProcessing",
    "JsonPath",
    "RecordError",
    "record_format",
]

CSV_TYPES = frozenset({"text/csv"})
JSON_TYPES = frozenset({"application/json", "application/jsonlines", "application/x-jsonlines"})
OUTPUT_KEY = "SageMakerOutput"
INPUT_KEY = "SageMakerInput"


class RecordError(ValueError):
    """A record (or the container's answer for it) cannot be filtered or joined."""


def record_format(content_type: str | None) -> str | None:
    """``"csv"``, ``"json"`` or None (not a format DataProcessing handles)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in CSV_TYPES:
        return "csv"
    if media in JSON_TYPES:
        return "json"
    return None


# ---- JSONPath ------------------------------------------------------------------------------
_INT = r"-?\d+"
_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
      | \.\*(?P<dotstar>)
      | \[\*\](?P<star>)
      | \[(?P<slice>\s*(?:-?\d+)?\s*:\s*(?:-?\d+)?\s*)\]
      | \[(?P<indices>\s*-?\d+\s*(?:,\s*-?\d+\s*)*)\]
      | \[(?P<names>\s*'[^']*'\s*(?:,\s*'[^']*'\s*)*)\]
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Step:
    kind: str  # name | names | index | indices | slice | star
    names: tuple[str, ...] = ()
    numbers: tuple[int | None, ...] = ()


@dataclass(frozen=True)
class JsonPath:
    """One compiled expression of AWS's JSONPath subset."""

    text: str
    steps: tuple[_Step, ...]

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Compile ``text``; ValueError saying where it leaves the subset."""
        source = text.strip()
        if not source.startswith("$"):
            raise ValueError(f"JSONPath {text!r} must start with '$'")
        steps, at = [], 1
        while at < len(source):
            match = _STEP.match(source, at)
            if match is None:
                raise ValueError(
                    f"JSONPath {text!r}: {source[at:]!r} is not in SageMaker's subset ($, .name, "
                    "*, ['name',...], [index,...], [start:end])"
                )
            steps.append(_compile(match))
            at = match.end()
        return cls(text, tuple(steps))

    @property
    def identity(self) -> bool:
        return not self.steps

    def apply(self, value: Any) -> Any:
        for step in self.steps:
            value = _select(value, step, self.text)
        return value


def _compile(match: re.Match[str]) -> _Step:
    if match["name"] is not None:
        return _Step("name", (match["name"],))
    if match["dotstar"] is not None or match["star"] is not None:
        return _Step("star")
    if match["slice"] is not None:
        start, _, end = match["slice"].partition(":")
        bounds = tuple(int(part) if part.strip() else None for part in (start, end))
        return _Step("slice", numbers=bounds)
    if match["indices"] is not None:
        numbers = tuple(int(part) for part in match["indices"].split(","))
        return _Step("index" if len(numbers) == 1 else "indices", numbers=numbers)
    names = tuple(re.findall(r"'([^']*)'", match["names"]))
    return _Step("name" if len(names) == 1 else "names", names)


def _select(value: Any, step: _Step, text: str) -> Any:
    if step.kind == "star":
        if isinstance(value, dict):
            return list(value.values())
        if isinstance(value, list):
            return list(value)
        raise RecordError(f"{text}: '*' needs an object or an array, not {_kind(value)}")
    if step.kind in ("name", "names"):
        if not isinstance(value, dict):
            raise RecordError(f"{text}: a name needs an object, not {_kind(value)}")
        missing = [name for name in step.names if name not in value]
        if missing:
            raise RecordError(f"{text}: the record has no key {missing[0]!r}")
        if step.kind == "name":
            return value[step.names[0]]
        return {name: value[name] for name in step.names}
    if not isinstance(value, list):
        raise RecordError(f"{text}: an index needs an array (a CSV row), not {_kind(value)}")
    size = len(value)
    if step.kind == "slice":
        start, end = step.numbers
        first = 0 if start is None else start + size if start < 0 else start
        last = size - 1 if end is None else end + size if end < 0 else end
        return value[max(first, 0) : max(last + 1, 0)]  # the end index is inclusive
    picked = []
    for number in step.numbers:
        assert number is not None
        if not -size <= number < size:
            raise RecordError(f"{text}: index {number} is out of range for {size} column(s)")
        picked.append(value[number])
    return picked[0] if step.kind == "index" else picked


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "a string" if isinstance(value, str) else "a scalar"


# ---- records -------------------------------------------------------------------------------
def _parse(raw: bytes, fmt: str) -> Any:
    text = raw.decode("utf-8", errors="strict").rstrip("\r\n")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        if len(rows) != 1:
            raise RecordError(f"expected one CSV row, found {len(rows)}")
        return rows[0]
    try:
        return json.loads(text)
    except ValueError as error:
        raise RecordError(f"not a JSON record: {error}") from None


def _columns(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def _dump(value: Any, fmt: str) -> bytes:
    if fmt == "csv":
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow([_cell(v) for v in _columns(value)])
        return buffer.getvalue().encode()
    return json.dumps(value, separators=(",", ":")).encode()


def _answer_value(raw: bytes, fmt: str | None) -> Any:
    """The container's answer for one record, as a value (its text when it is no JSON)."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(text)))
        return rows[0] if len(rows) == 1 else text
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True)
class DataProcessing:
    """A job's DataProcessing settings, compiled for its input and answer formats."""

    input_filter: JsonPath
    output_filter: JsonPath
    join: bool
    input_format: str | None
    output_format: str | None

    @classmethod
    def compile(
        cls, config: Mapping[str, Any] | None, content_type: str | None, accept: str | None
    ) -> DataProcessing:
        config = config or {}
        processing = cls(
            JsonPath.parse(str(config.get("InputFilter") or "$")),
            JsonPath.parse(str(config.get("OutputFilter") or "$")),
            (config.get("JoinSource") or "None") == "Input",
            record_format(content_type),
            record_format(accept) or record_format(content_type),
        )
        if processing.active and processing.input_format is None:
            given = f"not {content_type!r}" if content_type else "and the job sets none"
            raise ValueError(
                "its filters and JoinSource need a CSV or JSON ContentType (text/csv, "
                f"application/json, application/jsonlines), {given}"
            )
        return processing

    @property
    def active(self) -> bool:
        return self.join or not (self.input_filter.identity and self.output_filter.identity)

    def request_record(self, raw: bytes) -> bytes:
        """What the container gets for input record ``raw`` (without its line end)."""
        if self.input_filter.identity or self.input_format is None:
            return raw.rstrip(b"\r\n")
        return _dump(self.input_filter.apply(_parse(raw, self.input_format)), self.input_format)

    def output_records(
        self, inputs: Sequence[bytes], answer: bytes, answer_type: str | None
    ) -> list[bytes]:
        """The records written for one request: its input records and the container's answer."""
        answer_format = record_format(answer_type) or self.output_format
        if len(inputs) == 1:
            parts = [answer]
        else:
            lines = answer.decode("utf-8", errors="replace").splitlines()
            parts = [line.encode() for line in lines if line.strip()]
            if len(parts) != len(inputs):
                raise RecordError(
                    f"the container answered {len(parts)} line(s) for {len(inputs)} records; "
                    "with JoinSource or an OutputFilter every record needs one line of answer"
                )
        written = []
        for raw, part in zip(inputs, parts, strict=True):
            value = _answer_value(part, answer_format)
            fmt = answer_format or "json"
            if self.join:
                assert self.input_format is not None
                value, fmt = _joined(_parse(raw, self.input_format), value, self.input_format)
            written.append(_dump(self.output_filter.apply(value), fmt))
        return written


def _joined(record: Any, answer: Any, fmt: str) -> tuple[Any, str]:
    if fmt == "csv":
        return [*record, *_columns(answer)], "csv"
    if isinstance(record, dict):
        if OUTPUT_KEY in record:
            raise RecordError(f"the input record has the key {OUTPUT_KEY!r}, which join reserves")
        return {**record, OUTPUT_KEY: answer}, "json"
    return {INPUT_KEY: record, OUTPUT_KEY: answer}, "json"
