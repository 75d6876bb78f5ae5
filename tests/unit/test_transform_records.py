"""Batch transform's record handling, property-tested: splitting, MultiRecord packing, AWS's
JSONPath subset (its inclusive slices) and JoinSource, on inputs Hypothesis makes up."""

from __future__ import annotations

import csv
import gzip
import io
import itertools
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlocal.emulator.service.transform_dataproc import DataProcessing, JsonPath, RecordError
from smlocal.emulator.service.transform_input import RecordTooLarge, pack, records

LINE = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)
FIELD = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=8)


@given(st.lists(LINE, max_size=60), st.booleans())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_line_split_yields_every_non_empty_line_in_order(
    tmp_path: Path, lines: list[bytes], gz: bool
) -> None:
    data = b"".join(line + b"\n" for line in lines) + b"\n"  # a blank line at the end
    path = tmp_path / "object"
    path.write_bytes(gzip.compress(data) if gz else data)
    got = list(records(path, "Line", "Gzip" if gz else "None"))
    assert [r.rstrip(b"\n") for r in got] == [line for line in lines if line.strip(b"\r\n")]
    assert list(records(path, "None", "Gzip" if gz else "None")) == [data]


@given(st.lists(LINE, min_size=1, max_size=80), st.integers(min_value=41, max_value=400))
def test_multirecord_packs_in_order_within_the_limit(lines: list[bytes], limit: int) -> None:
    batches = list(pack(((line, line) for line in lines), True, limit))
    assert [r for batch, _ in batches for r in batch] == lines  # nothing lost, none twice
    for batch, body in batches:
        assert body == b"".join(r + b"\n" for r in batch)
        assert len(body) <= limit
    # greedy: the next batch's first record would not have fitted in the one before
    for (_, body), (following, _) in itertools.pairwise(batches):
        assert len(body) + len(following[0]) + 1 > limit


@given(st.lists(LINE, min_size=1, max_size=30))
def test_singlerecord_sends_each_record_alone(lines: list[bytes]) -> None:
    batches = list(pack(((line, line) for line in lines), False, 6 * 1024 * 1024))
    assert batches == [([line], line) for line in lines]


def test_a_record_over_the_limit_is_refused() -> None:
    with pytest.raises(RecordTooLarge, match="record 2 is 11 bytes"):
        list(pack(iter([(b"a", b"a"), (b"x" * 10, b"x" * 10)]), True, 8))


@given(st.lists(st.integers(), max_size=12), st.integers(-14, 14), st.integers(-14, 14))
def test_slices_include_their_end(values: list[int], start: int, end: int) -> None:
    size = len(values)
    first = start + size if start < 0 else start
    last = end + size if end < 0 else end
    expected = values[max(first, 0) : max(last + 1, 0)]
    assert JsonPath.parse(f"$[{start}:{end}]").apply(values) == expected
    assert JsonPath.parse(f"$[{start}:]").apply(values) == values[max(first, 0) :]
    assert JsonPath.parse(f"$[:{end}]").apply(values) == values[: max(last + 1, 0)]


def test_the_documented_examples() -> None:
    row = ["id", "c1", "c2", "c3", "c4", "c5", "c6"]
    assert JsonPath.parse("$[1:4]").apply(row) == ["c1", "c2", "c3", "c4"]  # 2nd-5th columns
    assert JsonPath.parse("$[:5]").apply(row) == row[:6]
    assert JsonPath.parse("$[0,-1]").apply(row) == ["id", "c6"]
    assert JsonPath.parse("$[1:]").apply(row) == row[1:]
    record = {"id": 1, "features": [1, 2], "SageMakerOutput": {"score": 0.5}}
    assert JsonPath.parse("$['id','SageMakerOutput']").apply(record) == {
        "id": 1,
        "SageMakerOutput": {"score": 0.5},
    }
    assert JsonPath.parse("$.SageMakerOutput.score").apply(record) == 0.5
    assert JsonPath.parse("$.features[-1]").apply(record) == 2
    assert JsonPath.parse("$.*").apply({"a": 1, "b": 2}) == [1, 2]
    with pytest.raises(RecordError, match="out of range"):
        JsonPath.parse("$[9]").apply(row)


@given(st.text(max_size=20))
def test_any_text_parses_or_is_refused_cleanly(text: str) -> None:
    try:
        JsonPath.parse(text)
    except ValueError as error:
        assert "JSONPath" in str(error)


def _csv(fields: list[str]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(fields)
    return buffer.getvalue().encode()


@given(
    st.lists(st.lists(FIELD, min_size=2, max_size=5), min_size=1, max_size=20),
    st.lists(FIELD, min_size=1, max_size=3),
)
def test_csv_join_lines_each_answer_up_with_its_input(
    rows: list[list[str]], answer: list[str]
) -> None:
    processing = DataProcessing.compile(
        {"InputFilter": "$[1:]", "JoinSource": "Input", "OutputFilter": "$[0,-1]"},
        "text/csv",
        "text/csv",
    )
    raws = [_csv(row) for row in rows]
    sent = [processing.request_record(raw) for raw in raws]
    assert [next(csv.reader([s.decode()])) for s in sent] == [row[1:] for row in rows]
    # the container answers one CSV line per record, tagged with the record's position
    lines = [_csv([*answer, f"r{i}"]) for i in range(len(rows))]
    written = processing.output_records(raws, b"".join(lines), "text/csv")
    assert [next(csv.reader([w.decode()])) for w in written] == [
        [row[0], f"r{i}"] for i, row in enumerate(rows)
    ]


def test_an_answer_that_does_not_line_up_fails_the_batch() -> None:
    processing = DataProcessing.compile({"JoinSource": "Input"}, "text/csv", "text/csv")
    with pytest.raises(RecordError, match="answered 1 line"):
        processing.output_records([b"1,2\n", b"3,4\n"], b"x\n", "text/csv")


@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=4), st.integers())
def test_json_join_puts_the_answer_beside_the_input(record: dict[str, int], answer: int) -> None:
    record.pop("SageMakerOutput", None)
    processing = DataProcessing.compile({"JoinSource": "Input"}, "application/jsonlines", None)
    raw = json.dumps(record).encode() + b"\n"
    (written,) = processing.output_records([raw], str(answer).encode(), "application/json")
    assert json.loads(written) == {**record, "SageMakerOutput": answer}
    (wrapped,) = processing.output_records([b"[1, 2]"], b"3", "application/json")
    assert json.loads(wrapped) == {"SageMakerInput": [1, 2], "SageMakerOutput": 3}


def test_pass_through_when_nothing_is_asked() -> None:
    processing = DataProcessing.compile(None, "application/x-image", None)
    assert not processing.active
    assert processing.request_record(b"\x00\xff\n") == b"\x00\xff"
    with pytest.raises(ValueError, match="CSV or JSON ContentType"):
        DataProcessing.compile({"InputFilter": "$[1:]"}, "application/x-image", None)
