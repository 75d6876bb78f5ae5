"""The async queue: what an accepted InvokeEndpointAsync request is, and where it waits.

A :class:`QueuedRequest` is fixed when the request is accepted (its output and failure object
names included, so writing an outcome again overwrites it: exactly one outcome per request).
:class:`AsyncQueue` keeps every async endpoint's requests in SQLite (WAL, one transaction per
change), so a restart or a SIGKILL of the service loses none; rows go ``queued`` →
``running`` → ``done``, and ``running`` rows go back to the queue at the next start. The
integer and path headers InvokeEndpointAsync takes are checked here against botocore's model.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session

from smlocal.emulator.aws_errors import validation_error

__all__ = [
    "INLINE_BODY_LIMIT",
    "INT_HEADERS",
    "PATH_HEADERS",
    "AsyncQueue",
    "QueuedRequest",
    "int_header",
    "join_location",
    "rules_of_ints",
    "split_s3",
]

# The inline Body InvokeEndpointAsync may carry instead of an InputLocation.
INLINE_BODY_LIMIT = 128_000
INT_HEADERS = {
    "RequestTTLSeconds": "x-amzn-sagemaker-requestttlseconds",
    "InvocationTimeoutSeconds": "x-amzn-sagemaker-invocationtimeoutseconds",
}
PATH_HEADERS = {
    "S3OutputPathExtension": "x-amzn-sagemaker-s3outputpathextension",
    "Filename": "x-amzn-sagemaker-filename",
}


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` → (bucket, key)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// location (smlocal reads and writes s3:// only)")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def join_location(base: str, *parts: str) -> str:
    path = base.rstrip("/")
    for part in parts:
        if part:
            path += "/" + part.strip("/")
    return path


# ---- the queue ---------------------------------------------------------------------------
@dataclass(frozen=True)
class QueuedRequest:
    key: str
    endpoint: str
    inference_id: str
    input_location: str
    output_location: str
    failure_location: str
    headers: dict[str, str]
    ttl_s: int
    timeout_s: int
    received_at: float
    config: dict[str, Any]
    recovered: bool = False

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, endpoint TEXT NOT NULL,
    state TEXT NOT NULL, recovered INTEGER NOT NULL DEFAULT 0, received_at REAL NOT NULL,
    expires_at REAL NOT NULL, outcome TEXT NOT NULL DEFAULT '', request TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS requests_waiting ON requests (endpoint, state, seq);
CREATE TABLE IF NOT EXISTS configs (endpoint TEXT PRIMARY KEY, config TEXT NOT NULL);
"""


class AsyncQueue:
    """The requests of every async endpoint, in SQLite (WAL, one transaction per change:
    what a call committed survives a SIGKILL, as the service's store does)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        path.chmod(0o600)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...] = ()) -> int:
        with self._lock:
            return self._db.execute(sql, args).rowcount

    def add(self, request: QueuedRequest) -> None:
        payload = {k: v for k, v in request.__dict__.items() if k != "recovered"}
        self._write(
            "INSERT INTO requests (key, endpoint, state, received_at, expires_at, request) "
            "VALUES (?, ?, 'queued', ?, ?, ?)",
            (
                request.key,
                request.endpoint,
                request.received_at,
                request.received_at + request.ttl_s,
                json.dumps(payload),
            ),
        )

    def recover(self) -> int:
        """At start: what a killed run had in flight goes back to the queue."""
        return self._write("UPDATE requests SET state='queued', recovered=1 WHERE state='running'")

    def _claim(self, where: str, args: tuple[Any, ...], limit: int) -> list[QueuedRequest]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows = self._db.execute(
                    f"SELECT seq, recovered, request FROM requests WHERE {where} "  # noqa: S608
                    "ORDER BY seq LIMIT ?",
                    (*args, limit),
                ).fetchall()
                self._db.executemany(
                    "UPDATE requests SET state='running' WHERE seq=?", [(r[0],) for r in rows]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return [QueuedRequest(**json.loads(r[2]), recovered=bool(r[1])) for r in rows]

    def take(self, endpoint: str, limit: int) -> list[QueuedRequest]:
        """The next ``limit`` queued requests of ``endpoint``, oldest first, now running."""
        if limit <= 0:
            return []
        return self._claim("endpoint=? AND state='queued'", (endpoint,), limit)

    def take_expired(self, endpoint: str, now: float) -> list[QueuedRequest]:
        return self._claim("endpoint=? AND state='queued' AND expires_at<?", (endpoint, now), 1000)

    def finish(self, key: str, outcome: str) -> None:
        self._write("UPDATE requests SET state='done', outcome=? WHERE key=?", (outcome, key))

    def requeue(self, key: str) -> None:
        self._write("UPDATE requests SET state='queued' WHERE key=?", (key,))

    def drop(self, endpoint: str) -> int:
        return self._write(
            "UPDATE requests SET state='done', outcome='dropped' "
            "WHERE endpoint=? AND state!='done'",
            (endpoint,),
        )

    def waiting_endpoints(self) -> list[str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT endpoint FROM requests WHERE state='queued'"
            ).fetchall()
        return [r[0] for r in rows]

    def backlog(self) -> dict[str, tuple[int, float]]:
        """Per endpoint: requests queued or in flight, and the oldest one's arrival time."""
        with self._lock:
            rows = self._db.execute(
                "SELECT endpoint, COUNT(*), MIN(received_at) FROM requests "
                "WHERE state!='done' GROUP BY endpoint"
            ).fetchall()
        return {r[0]: (int(r[1]), float(r[2])) for r in rows}

    def outcomes(self, endpoint: str) -> dict[str, str]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, outcome FROM requests WHERE endpoint=? AND state='done'", (endpoint,)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def remember_config(self, endpoint: str, config: Mapping[str, Any]) -> None:
        self._write(
            "INSERT OR REPLACE INTO configs (endpoint, config) VALUES (?, ?)",
            (endpoint, json.dumps(config)),
        )

    def config(self, endpoint: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT config FROM configs WHERE endpoint=?", (endpoint,)
            ).fetchone()
        return json.loads(row[0]) if row else None


@functools.cache
def rules_of_ints() -> dict[str, tuple[int, int]]:
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    return {m: (int(shape.members[m].metadata["min"]), int(shape.members[m].metadata["max"]))
            for m in INT_HEADERS}  # fmt: skip


def int_header(
    limits: Mapping[str, tuple[int, int]], member: str, headers: Mapping[str, str]
) -> int | None:
    raw = headers.get(INT_HEADERS[member])
    if raw is None:
        return None
    field_name = member[0].lower() + member[1:]
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(
            f"1 validation error detected: Value '{raw}' at '{field_name}' failed to satisfy "
            "constraint: Member must be an integer"
        ) from None
    low, high = limits[member]
    if value < low:
        rule = f"Member must have value greater than or equal to {low}"
    elif value > high:
        rule = f"Member must have value less than or equal to {high}"
    else:
        return value
    raise validation_error(
        f"1 validation error detected: Value '{value}' at '{field_name}' failed to satisfy "
        f"constraint: {rule}"
    )
