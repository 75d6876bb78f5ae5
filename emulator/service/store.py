"""The local service's state in SQLite: models, endpoint configs, endpoints, tags.

Records are the Describe* outputs (JSON; timestamps as epoch seconds). Names are unique per
kind case-insensitively, because SageMaker's ARNs lower-case them ("Iris" and "iris" are the
same ARN). Every write is its own transaction in WAL mode, so SIGKILL of the service loses
nothing committed (``synchronous=NORMAL``: a power cut may lose the last transactions, never
corrupt the file). The file is the owner's only (0600, its folder 0700).

Listing follows SageMaker's List* members (NameContains, Creation/LastModifiedTime
Before/After, StatusEquals, SortBy, SortOrder, MaxResults, NextToken). NextToken is opaque:
an offset bound to a fingerprint of the query, so a token used with another query is refused
(:class:`InvalidToken`, answered as a ValidationException).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import sqlite3
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["AlreadyExists", "InvalidToken", "Kind", "ListQuery", "Store"]

_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    name_key TEXT NOT NULL,
    creation_time REAL NOT NULL,
    last_modified_time REAL NOT NULL,
    status TEXT,
    record TEXT NOT NULL,
    PRIMARY KEY (kind, name_key)
);
CREATE INDEX IF NOT EXISTS resources_created ON resources (kind, creation_time);
CREATE TABLE IF NOT EXISTS tags (
    arn TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (arn, key)
);
"""
_SORT_COLUMNS = {"Name": "name_key", "CreationTime": "creation_time", "Status": "status"}


class Kind(enum.StrEnum):
    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    TRANSFORM_JOB = "transform-job"


class AlreadyExists(Exception):
    """A resource of that kind and (case-insensitive) name exists."""


class InvalidToken(Exception):
    """A NextToken this store did not issue for this listing."""


@dataclass(frozen=True)
class ListQuery:
    name_contains: str | None = None
    creation_time_before: float | None = None
    creation_time_after: float | None = None
    last_modified_time_before: float | None = None
    last_modified_time_after: float | None = None
    status_equals: str | None = None
    sort_by: str = "CreationTime"
    sort_order: str = "Descending"
    max_results: int = 10
    next_token: str | None = None

    def fingerprint(self, kind: Kind) -> str:
        fields = {**asdict(self), "next_token": None, "kind": str(kind)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            path.touch(mode=0o600)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
        if version > _SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} was written by a newer smlocal (schema {version}); upgrade smlocal "
                "or point SMLOCAL_HOME elsewhere"
            )
        with self._lock:
            self._db.executescript(_SCHEMA)
            self._db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # ---- resources -------------------------------------------------------------------
    def insert(
        self, kind: Kind, name: str, record: dict[str, Any], *, status: str | None = None
    ) -> None:
        now = time.time()
        created = float(record.get("CreationTime", now))
        try:
            with self._lock:
                self._db.execute(
                    "INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (str(kind), name, name.lower(), created, now, status, json.dumps(record)),
                )
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{kind} {name}") from None

    def get(self, kind: Kind, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT record FROM resources WHERE kind = ? AND name_key = ?",
                (str(kind), name.lower()),
            ).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def replace(
        self, kind: Kind, name: str, record: dict[str, Any], *, status: str | None = None
    ) -> None:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE resources SET record = ?, status = ?, last_modified_time = ? "
                "WHERE kind = ? AND name_key = ?",
                (json.dumps(record), status, time.time(), str(kind), name.lower()),
            )
        if cursor.rowcount == 0:
            raise KeyError(f"{kind} {name}")

    def delete(self, kind: Kind, name: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM resources WHERE kind = ? AND name_key = ?", (str(kind), name.lower())
            )
        return cursor.rowcount > 0

    def all(self, kind: Kind) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM resources WHERE kind = ? ORDER BY creation_time", (str(kind),)
            ).fetchall()
        return [dict(json.loads(row[0])) for row in rows]

    def page(self, kind: Kind, query: ListQuery) -> tuple[list[dict[str, Any]], str | None]:
        """One page of ``kind`` matching ``query``, and the token of the next page."""
        offset = self._offset(kind, query)
        where, args = ["kind = ?"], [str(kind)]
        for clause, value in (
            ("instr(name_key, ?) > 0", (query.name_contains or "").lower() or None),
            ("creation_time < ?", query.creation_time_before),
            ("creation_time > ?", query.creation_time_after),
            ("last_modified_time < ?", query.last_modified_time_before),
            ("last_modified_time > ?", query.last_modified_time_after),
            ("status = ?", query.status_equals),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)  # type: ignore[arg-type]
        column = _SORT_COLUMNS.get(query.sort_by, "creation_time")
        order = "ASC" if query.sort_order == "Ascending" else "DESC"
        limit = max(1, min(int(query.max_results), 100))
        sql = (
            f"SELECT record FROM resources WHERE {' AND '.join(where)} "  # noqa: S608 (fixed words)
            f"ORDER BY {column} {order}, name_key {order} LIMIT ? OFFSET ?"
        )
        with self._lock:
            rows = self._db.execute(sql, [*args, limit + 1, offset]).fetchall()
        records = [dict(json.loads(row[0])) for row in rows[:limit]]
        token = None
        if len(rows) > limit:
            raw = json.dumps({"o": offset + limit, "q": query.fingerprint(kind)})
            token = base64.urlsafe_b64encode(raw.encode()).decode()
        return records, token

    @staticmethod
    def _offset(kind: Kind, query: ListQuery) -> int:
        if not query.next_token:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(query.next_token.encode()))
            offset = int(data["o"])
            fingerprint = str(data["q"])
        except (ValueError, KeyError, TypeError):
            raise InvalidToken("the NextToken is not one this service issued") from None
        if fingerprint != query.fingerprint(kind) or offset < 0:
            raise InvalidToken("the NextToken belongs to another listing")
        return offset

    # ---- tags --------------------------------------------------------------------------
    def add_tags(self, arn: str, tags: list[dict[str, str]]) -> None:
        with self._lock:
            position = int(
                self._db.execute(
                    "SELECT COALESCE(MAX(position), 0) FROM tags WHERE arn = ?", (arn,)
                ).fetchone()[0]
            )
            for offset, tag in enumerate(tags, 1):
                self._db.execute(
                    "INSERT INTO tags VALUES (?, ?, ?, ?) ON CONFLICT (arn, key) "
                    "DO UPDATE SET value = excluded.value",
                    (arn, tag["Key"], tag.get("Value", ""), position + offset),
                )

    def list_tags(
        self, arn: str, max_results: int, next_token: str | None
    ) -> tuple[list[dict[str, str]], str | None]:
        offset = int(next_token) if next_token and next_token.isdigit() else 0
        if next_token and not next_token.isdigit():
            raise InvalidToken("the NextToken is not one this service issued")
        limit = max(1, min(max_results, 100))
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value FROM tags WHERE arn = ? ORDER BY position LIMIT ? OFFSET ?",
                (arn, limit + 1, offset),
            ).fetchall()
        tags = [{"Key": key, "Value": value} for key, value in rows[:limit]]
        return tags, (str(offset + limit) if len(rows) > limit else None)

    def delete_tags(self, arn: str, keys: list[str]) -> None:
        with self._lock:
            self._db.executemany(
                "DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, key) for key in keys]
            )

    def delete_all_tags(self, arn: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM tags WHERE arn = ?", (arn,))
