"""Data capture's records, keys and buffered writer (no Docker; real files, real threads)."""

from __future__ import annotations

import base64
import datetime
import json
import logging
import math
import re
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smlocal.emulator.capture import (
    CaptureSpec,
    Exchange,
    capture_key,
    encode_payload,
    parse_destination,
    record_line,
)
from smlocal.emulator.capture_writer import CaptureWriter, LocalSink

CSV = ("text/csv",)
JSON = ("application/json",)
MEDIA = st.sampled_from(["text/csv", "application/json", "image/png", "application/x-npy"])
PARAMS = st.sampled_from(["", "; charset=utf-8", ";charset=UTF-8", "  ; q=1"])
KEY = re.compile(
    r"^(?P<prefix>.*/)?(?P<endpoint>[^/]+)/(?P<variant>[^/]+)/(?P<y>\d{4})/(?P<m>\d{2})/"
    r"(?P<d>\d{2})/(?P<h>\d{2})/(?P<mm>\d{2})-(?P<ss>\d{2})-(?P<ms>\d{3})-"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.jsonl$"
)


def _spec(**fields: object) -> CaptureSpec:
    return CaptureSpec.model_validate(
        {"sampling_percentage": 100, "destination": "/unused", **fields}
    )


@given(body=st.binary(max_size=256), media=MEDIA, params=PARAMS, upper=st.booleans())
def test_payloads_are_text_for_listed_types_and_base64_for_the_rest(
    body: bytes, media: str, params: str, upper: bool
) -> None:
    content_type = (media.upper() if upper else media) + params
    encoding, data = encode_payload(body, content_type, CSV, JSON)
    try:
        text: str | None = body.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    expected = {"text/csv": "CSV", "application/json": "JSON"}.get(media)
    if expected is not None and text is not None:
        assert (encoding, data) == (expected, text)
    else:
        assert encoding == "BASE64"
        assert base64.b64decode(data) == body


@given(body=st.binary(max_size=64), media=MEDIA)
def test_without_content_type_lists_everything_is_base64(body: bytes, media: str) -> None:
    # botocore: "If no headers are specified ... SageMaker AI will by default base64 encode".
    assert encode_payload(body, media, (), ())[0] == "BASE64"


@given(
    text_in=st.text(max_size=80),
    text_out=st.text(max_size=80),
    inference_id=st.none() | st.text(min_size=1, max_size=64),
    mode=st.sampled_from(["Input", "Output", "InputAndOutput"]),
    at=st.floats(min_value=0, max_value=4_000_000_000),
)
def test_records_have_sagemakers_shape(
    text_in: str, text_out: str, inference_id: str | None, mode: str, at: float
) -> None:
    spec = CaptureSpec.from_aws(
        {
            "InitialSamplingPercentage": 100,
            "DestinationS3Uri": "s3://b/p",
            "CaptureOptions": [{"CaptureMode": mode}],
            "CaptureContentTypeHeader": {"CsvContentTypes": ["text/csv"]},
        }
    )
    exchange = Exchange("AllTraffic", at, "text/csv", text_in.encode(), "text/csv; charset=utf-8",
                        text_out.encode(), inference_id)  # fmt: skip
    line = record_line(exchange, spec, event_id="e-1")
    assert "\n" not in line
    record = json.loads(line)
    assert set(record) == {"captureData", "eventMetadata", "eventVersion"}
    assert record["eventVersion"] == "0"
    sides = {"Input": {"endpointInput"}, "Output": {"endpointOutput"}}
    assert set(record["captureData"]) == sides.get(mode, {"endpointInput", "endpointOutput"})
    if "endpointInput" in record["captureData"]:
        assert record["captureData"]["endpointInput"] == {
            "observedContentType": "text/csv", "mode": "INPUT", "data": text_in, "encoding": "CSV"
        }  # fmt: skip
    if "endpointOutput" in record["captureData"]:
        side = record["captureData"]["endpointOutput"]
        assert (side["observedContentType"], side["mode"]) == ("text/csv; charset=utf-8", "OUTPUT")
        assert (side["data"], side["encoding"]) == (text_out, "CSV")
    metadata = record["eventMetadata"]
    assert metadata["eventId"] == "e-1"
    assert metadata.get("inferenceId") == inference_id
    moment = datetime.datetime.fromtimestamp(int(at), tz=datetime.UTC)
    assert metadata["inferenceTime"] == moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_record_matches_the_sdks_sample_byte_for_byte_in_structure() -> None:
    # sagemaker-python-sdk tests/data/monitor/captured-data.jsonl (reference §E.2), key order too.
    spec = _spec(csv_types=CSV)
    exchange = Exchange("AllTraffic", 1644859549.2, "text/csv", b"69,0,153.7",
                        "text/csv; charset=utf-8", b"0.0254181120544672")  # fmt: skip
    line = record_line(exchange, spec, event_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    assert line == (
        '{"captureData":{"endpointInput":{"observedContentType":"text/csv","mode":"INPUT",'
        '"data":"69,0,153.7","encoding":"CSV"},"endpointOutput":{"observedContentType":'
        '"text/csv; charset=utf-8","mode":"OUTPUT","data":"0.0254181120544672","encoding":"CSV"}},'
        '"eventMetadata":{"eventId":"aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",'
        '"inferenceTime":"2022-02-14T17:25:49Z"},"eventVersion":"0"}'
    )


def test_json_payloads_are_the_raw_json_as_a_string() -> None:
    spec = _spec(json_types=JSON)
    body = b'{"instances": [1.0, 2.0, 5.0]}'
    record = json.loads(record_line(Exchange("v", 0, "application/json", body, None, b""), spec))
    side = record["captureData"]["endpointInput"]
    assert (side["data"], side["encoding"]) == ('{"instances": [1.0, 2.0, 5.0]}', "JSON")
    assert "observedContentType" not in record["captureData"]["endpointOutput"]


@given(at=st.floats(min_value=0, max_value=4_000_000_000), prefix=st.sampled_from(["", "a/b"]))
def test_keys_follow_the_documented_layout(at: float, prefix: str) -> None:
    key = capture_key(prefix, "my-ep", "AllTraffic", at)
    match = KEY.match(key)
    assert match is not None, key
    moment = datetime.datetime.fromtimestamp(math.floor(at), tz=datetime.UTC)
    moment += datetime.timedelta(microseconds=int((at - math.floor(at)) * 1e6))
    assert (match["endpoint"], match["variant"]) == ("my-ep", "AllTraffic")
    found = tuple(int(match[g]) for g in ("y", "m", "d", "h", "mm", "ss", "ms"))
    wanted = (moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second,
              moment.microsecond // 1000)  # fmt: skip
    assert found == wanted
    assert (match["prefix"] or "") == (f"{prefix}/" if prefix else "")


@given(
    percentage=st.integers(0, 100),
    enabled=st.booleans(),
    modes=st.lists(st.sampled_from(["Input", "Output", "InputAndOutput"]), min_size=1),
    kms=st.none() | st.just("arn:aws:kms:us-east-1:000000000000:key/k"),
)
def test_config_round_trips_and_summarises(
    percentage: int, enabled: bool, modes: list[str], kms: str | None
) -> None:
    aws = {
        "EnableCapture": enabled,
        "InitialSamplingPercentage": percentage,
        "DestinationS3Uri": "s3://bucket/capture",
        "CaptureOptions": [{"CaptureMode": m} for m in modes],
        **({"KmsKeyId": kms} if kms else {}),
    }
    spec = CaptureSpec.from_aws(aws)
    assert CaptureSpec.from_aws(spec.as_aws()) == spec
    summary = spec.summary()
    assert summary["EnableCapture"] is enabled
    assert summary["CaptureStatus"] == ("Started" if enabled else "Stopped")
    assert summary["CurrentSamplingPercentage"] == percentage
    assert summary["DestinationS3Uri"] == "s3://bucket/capture"
    assert summary.get("KmsKeyId") == kms


@given(percentage=st.integers(0, 100), draw=st.floats(0, 1, exclude_max=True))
def test_sampling_takes_the_percentage(percentage: int, draw: float) -> None:
    assert _spec(sampling_percentage=percentage).sampled(draw) is (draw * 100 < percentage)


def test_destinations() -> None:
    assert parse_destination("s3://bkt/a/b/").bucket == "bkt"
    assert parse_destination("s3://bkt/a/b/").prefix == "a/b"
    assert parse_destination("file:///tmp/c").prefix == "/tmp/c"
    assert parse_destination("./c").bucket is None
    for bad in ("https://bkt.s3.amazonaws.com/p", "s3:///nobucket"):
        with pytest.raises(ValueError, match="DestinationS3Uri"):
            parse_destination(bad)


def _exchange(
    variant: str = "AllTraffic", at: float | None = None, body: bytes = b"1,2"
) -> Exchange:
    return Exchange(variant, time.time() if at is None else at, "text/csv", body, "text/csv", b"0")


def _lines(root: Path) -> list[dict[str, object]]:
    return [
        json.loads(line)
        for f in sorted(root.rglob("*.jsonl"))
        for line in f.read_text().splitlines()
    ]


def test_buffered_records_are_written_on_close(tmp_path: Path) -> None:
    writer = CaptureWriter(_spec(csv_types=CSV), "ep", LocalSink(tmp_path), flush_interval_s=3600)
    hour = 1_700_000_000.0
    for i in range(10):
        writer.offer(_exchange("A" if i % 2 else "B", hour + i))
    writer.offer(_exchange("A", hour + 3600))  # the next hour: a file of its own
    assert list(tmp_path.rglob("*.jsonl")) == []  # still buffered
    writer.close()
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl"))
    assert [f.rsplit("/", 1)[0] for f in files] == [
        "ep/A/2023/11/14/22", "ep/A/2023/11/14/23", "ep/B/2023/11/14/22"
    ]  # fmt: skip
    assert len(_lines(tmp_path)) == 11
    assert writer.written == {"A": 6, "B": 5}
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".capture-")]


def test_a_full_batch_is_written_without_waiting_for_the_interval(tmp_path: Path) -> None:
    writer = CaptureWriter(_spec(), "ep", LocalSink(tmp_path), flush_interval_s=3600,
                           flush_records=5)  # fmt: skip
    for _ in range(5):
        writer.offer(_exchange())
    deadline = time.monotonic() + 30
    while not list(tmp_path.rglob("*.jsonl")) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(_lines(tmp_path)) == 5
    writer.close()


class _BrokenSink:
    def write(self, key: str, body: bytes) -> None:
        raise OSError(28, "No space left on device")

    def describe(self) -> str:
        return "/full"


def test_a_failed_write_drops_the_batch_with_a_warning_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    writer = CaptureWriter(_spec(), "ep", _BrokenSink(), flush_interval_s=3600)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            writer.offer(_exchange())
        writer.close()
    assert writer.dropped == {"write_failed": 3}
    assert 'smlocal_capture_dropped_total{endpoint="ep",reason="write_failed"} 3' in (
        writer.prometheus()
    )
    assert "No space left on device" in caplog.text
    assert "requests are not affected" in caplog.text


def test_a_write_the_os_refuses_leaves_no_partial_file(tmp_path: Path) -> None:
    """A real failing write: the file-size limit (EFBIG, the same OSError path as ENOSPC)."""
    script = textwrap.dedent(
        f"""
        import json, resource, signal, time
        from pathlib import Path
        from smlocal.emulator.capture import CaptureSpec, Exchange
        from smlocal.emulator.capture_writer import CaptureWriter, LocalSink
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        spec = CaptureSpec(sampling_percentage=100, destination="unused")
        writer = CaptureWriter(spec, "ep", LocalSink({str(tmp_path)!r}), flush_interval_s=3600)
        writer.offer(Exchange("big", time.time(), "x/y", b"x" * 20000, "x/y", b""))
        writer.close()
        writer = CaptureWriter(spec, "ep", LocalSink({str(tmp_path)!r}), flush_interval_s=3600)
        writer.offer(Exchange("small", time.time(), "x/y", b"x", "x/y", b""))
        writer.close()
        print(json.dumps({{"dropped": writer.dropped, "written": writer.written}}))
        """
    )
    answer = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            check=True, timeout=120)  # fmt: skip
    assert json.loads(answer.stdout.splitlines()[-1]) == {"dropped": {}, "written": {"small": 1}}
    assert "File too large" in answer.stderr  # the first writer's warning
    assert [p.parent.parent.parent.parent.parent.name for p in tmp_path.rglob("*.jsonl")] == [
        "small"
    ]
    assert [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".jsonl"] == []


class _GatedSink:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.bodies: list[bytes] = []

    def write(self, key: str, body: bytes) -> None:
        self.gate.wait(60)
        self.bodies.append(body)

    def describe(self) -> str:
        return "gated"


def test_a_slow_destination_drops_new_records_instead_of_growing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = _GatedSink()
    writer = CaptureWriter(_spec(), "ep", sink, flush_interval_s=3600, flush_records=1,
                           max_pending_bytes=1000)  # fmt: skip
    writer.offer(_exchange(body=b"x" * 400))  # the writer takes it and blocks in the sink
    deadline = time.monotonic() + 30
    while writer._pending and time.monotonic() < deadline:
        time.sleep(0.01)
    with caplog.at_level(logging.WARNING):
        for _ in range(5):
            writer.offer(_exchange(body=b"x" * 400))  # 2 fit in 1000 bytes, 3 do not
    assert writer.dropped_on_request == {"backlog": 3}
    assert "backlog" in caplog.text
    sink.gate.set()
    writer.close()
    assert sum(body.count(b"\n") for body in sink.bodies) == 3


def test_nothing_is_captured_when_disabled_or_at_zero_percent(tmp_path: Path) -> None:
    for spec in (_spec(sampling_percentage=0), _spec(capture_input=False, capture_output=False)):
        writer = CaptureWriter(spec, "ep", LocalSink(tmp_path), flush_interval_s=3600)
        for _ in range(50):
            writer.offer(_exchange())
        writer.close()
    assert list(tmp_path.rglob("*.jsonl")) == []


def test_offer_after_close_is_counted_not_lost_silently(tmp_path: Path) -> None:
    writer = CaptureWriter(_spec(), "ep", LocalSink(tmp_path), flush_interval_s=3600)
    writer.close()
    writer.offer(_exchange())
    assert writer.dropped_on_request == {"closed": 1}


def test_a_record_at_the_end_of_an_hour_stays_in_that_hour() -> None:
    at = 3599.9999999  # floats round up to 01:00:00.000000 if converted naively
    record = json.loads(record_line(Exchange("v", at, None, b"", None, b""), _spec()))
    assert record["eventMetadata"]["inferenceTime"] == "1970-01-01T00:59:59Z"
    assert capture_key("", "ep", "v", at).startswith("ep/v/1970/01/01/00/59-59-999-")


def test_local_capture_files_follow_the_umask(tmp_path: Path) -> None:
    """Not mkstemp's 0600: AWS's analyzer, maybe in another user's container, reads them."""
    import os

    from smlocal.emulator.capture_writer import LocalSink

    previous = os.umask(0o022)
    try:
        LocalSink(tmp_path).write("ep/A/2026/12/02/06/00-00-000-x.jsonl", b"{}\n")
    finally:
        os.umask(previous)
    written = tmp_path / "ep/A/2026/12/02/06/00-00-000-x.jsonl"
    assert written.read_bytes() == b"{}\n"
    assert written.stat().st_mode & 0o777 == 0o644
