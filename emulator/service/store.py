"""The local service's state in SQLite: models, endpoint configs, endpoints, transform jobs, tags.

Owns persistence only; it knows nothing of HTTP or containers. A record is the Describe*
output of a resource (a JSON-serialisable dict, timestamps as float epoch seconds).

Documented choices:

* Names are unique per kind case-insensitively (column ``name_key``, the lower-cased name),
  because SageMaker's ARNs lower-case the name: "Iris" and "iris" would be the same ARN.
  ``get``/``replace``/``delete`` find a record by either spelling; the record keeps the name
  as given.
* Columns ``creation_time``/``last_modified_time`` come from the record's ``CreationTime``/
  ``LastModifiedTime`` when it has them (so the listing filters agree with Describe*), else
  from the clock; ``replace`` never moves ``creation_time``. ``status`` is what the caller
  passes (``''`` for none, so keyset comparisons never meet NULL).
* Durability: WAL journal, ``synchronous=NORMAL``, every write one ``BEGIN IMMEDIATE``
  transaction. A commit is in the WAL file (the OS page cache) before the call returns, so
  SIGKILL of the service loses nothing committed; a power loss or kernel crash may lose the
  last transactions since the last WAL sync, never the file's integrity.
* Concurrency: one connection behind a lock serves all threads; other processes wait up to
  ``busy_timeout`` (10 s) for the write lock.
* Permissions: the file is created 0600 (SQLite gives its -wal/-shm files the same mode),
  its folder 0700 when the store creates it.
* Schema version in ``PRAGMA user_version``; older files are migrated step by step
  (:data:`_MIGRATIONS`), a newer file is refused with :class:`StoreVersionError`.
* Listing follows botocore's List* docs: NameContains is a case-insensitive substring;
  CreationTimeBefore is strict, CreationTimeAfter inclusive ("greater than or equal to",
  ListEndpoints/ListModels/ListEndpointConfigs); LastModifiedTimeBefore/After are strict;
  SortBy ``Name`` (by lower-cased name) | ``CreationTime`` | ``Status``, ties broken by name;
  SortOrder default Descending; MaxResults 1-100, default 10 (ListEndpoints and
  ListTransformJobs document 10; ListModels/ListEndpointConfigs document none).
* NextToken is keyset pagination: it carries the last row's (sort value, name_key), so records
  added or deleted between pages never shift a page (no duplicates, nothing skipped that
  existed throughout). It is opaque: base64 of an HMAC (keyed by a secret kept in the file, so
  tokens survive a restart) over a JSON payload holding the position and a fingerprint of the
  listing (kind + filters + sort; MaxResults may change between pages). Garbage, a forged
  token, or one from another listing raises :class:`InvalidToken`. ListTags pages the same
  way over the tags' insertion order (overwriting a key keeps its place).
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "AlreadyExists",
    "InvalidToken",
    "Kind",
    "ListQuery",
    "NotFound",
    "Store",
    "StoreVersionError",
]

Record = dict[str, Any]
Records = list[Record]  # aliases: inside Store, ``list`` names the method
Tags = list[dict[str, str]]
_Args = list[Any]

SCHEMA_VERSION = 1
_SCHEMA_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE resources (
    kind TEXT NOT NULL, name TEXT NOT NULL, name_key TEXT NOT NULL,
    creation_time REAL NOT NULL, last_modified_time REAL NOT NULL,
    status TEXT NOT NULL DEFAULT '', record TEXT NOT NULL, UNIQUE (kind, name_key)
);
CREATE INDEX resources_by_creation ON resources (kind, creation_time, name_key);
CREATE INDEX resources_by_status ON resources (kind, status, name_key);
CREATE TABLE tags (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: a tags NextToken holds an id
    arn TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, UNIQUE (arn, key)
);
"""
# version N -> the step that turns a version-N file into N+1 (none yet).
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {}
# Fixed words only: the SQL below interpolates these, never caller text.
_SORT_COLUMNS = {"Name": "name_key", "CreationTime": "creation_time", "Status": "status"}
_ORDERS = {"Ascending": ("ASC", ">"), "Descending": ("DESC", "<")}
MAX_RESULTS_DEFAULT = 10
MAX_RESULTS_LIMIT = 100
_BUSY_TIMEOUT_MS = 10_000
_SIG_BYTES = 16


class Kind(enum.StrEnum):
    MODEL = "model"
    ENDPOINT_CONFIG = "endpoint-config"
    ENDPOINT = "endpoint"
    TRANSFORM_JOB = "transform-job"


class AlreadyExists(Exception):
    """A resource of that kind and (case-insensitively) that name exists."""


class NotFound(KeyError):
    """No resource of that kind and name. A KeyError, for callers written against a dict."""


class InvalidToken(Exception):
    """A NextToken this store did not issue, or issued for another listing."""


class StoreVersionError(RuntimeError):
    """The file was written by a newer smlocal (a schema this version cannot read)."""


@dataclass(frozen=True)
class ListQuery:
    """SageMaker's List* input members, snake-cased; ``None`` means "no filter"."""

    name_contains: str | None = None
    creation_time_before: float | None = None
    creation_time_after: float | None = None
    last_modified_time_before: float | None = None
    last_modified_time_after: float | None = None
    status_equals: str | None = None
    sort_by: str = "CreationTime"
    sort_order: str = "Descending"
    max_results: int = MAX_RESULTS_DEFAULT
    next_token: str | None = None

    def __post_init__(self) -> None:
        # The control plane validates against botocore first; this guards the SQL words.
        if self.sort_by not in _SORT_COLUMNS:
            raise ValueError(f"sort_by must be one of {sorted(_SORT_COLUMNS)}: {self.sort_by!r}")
        if self.sort_order not in _ORDERS:
            raise ValueError(f"sort_order must be Ascending or Descending: {self.sort_order!r}")
        if not 1 <= self.max_results <= MAX_RESULTS_LIMIT:
            raise ValueError(f"max_results must be 1-{MAX_RESULTS_LIMIT}: {self.max_results}")
        for field in ("creation_time_before", "creation_time_after",
                      "last_modified_time_before", "last_modified_time_after"):  # fmt: skip
            # SQLite ranks any text above any number: an ISO string would filter nothing.
            _timestamp({field: getattr(self, field)}, field, 0.0)

    def fingerprint(self, kind: Kind) -> str:
        """What identifies the listing a token belongs to: all but the page size and token."""
        fields = {**asdict(self), "max_results": None, "next_token": None, "kind": str(kind)}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
        # Create the file ourselves so it is 0600 from its first byte (SQLite would use 0644).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        self._lock = threading.Lock()
        # Autocommit mode: transactions are the explicit BEGIN IMMEDIATE in _write.
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            row = self._db.execute("SELECT value FROM meta WHERE key = 'token_secret'").fetchone()
            self._secret = bytes.fromhex(row[0])
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _migrate(self) -> None:
        with self._write() as db:  # IMMEDIATE: two processes opening a new file do not race
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise StoreVersionError(
                    f"{self.path} has store schema v{version}; this smlocal reads up to "
                    f"v{SCHEMA_VERSION}: upgrade smlocal or use another state directory"
                )
            if version == 0:
                for statement in _SCHEMA_V1.split(";"):
                    if statement.strip():
                        db.execute(statement)  # executescript would COMMIT our transaction
                db.execute("INSERT INTO meta VALUES ('token_secret', ?)", (secrets.token_hex(32),))
                version = 1
            while version < SCHEMA_VERSION:
                _MIGRATIONS[version](db)
                version += 1
            db.execute(f"PRAGMA user_version={version}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple[Any, ...] | _Args) -> _Args:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # ---- resources -------------------------------------------------------------------------
    def insert(self, kind: Kind, name: str, record: Record, *, status: str | None = None) -> None:
        """Add a resource; :class:`AlreadyExists` if the name (in any case) is taken."""
        now = time.time()
        created = _timestamp(record, "CreationTime", now)
        modified = _timestamp(record, "LastModifiedTime", created)
        try:
            with self._write() as db:
                db.execute(
                    "INSERT INTO resources VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (Kind(kind).value, name, name.lower(), created, modified, status or "",
                     _dump(record)),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise AlreadyExists(f"{kind} {name!r} already exists") from None

    def get(self, kind: Kind, name: str) -> Record | None:
        rows = self._read(
            "SELECT record FROM resources WHERE kind = ? AND name_key = ?",
            (Kind(kind).value, name.lower()),
        )
        return _load(rows[0][0]) if rows else None

    def replace(self, kind: Kind, name: str, record: Record, *, status: str | None = None) -> None:
        """Overwrite a resource's record and status; :class:`NotFound` if there is none."""
        modified = _timestamp(record, "LastModifiedTime", time.time())
        with self._write() as db:
            cursor = db.execute(
                "UPDATE resources SET record = ?, status = ?, last_modified_time = ? "
                "WHERE kind = ? AND name_key = ?",
                (_dump(record), status or "", modified, Kind(kind).value, name.lower()),
            )
            if cursor.rowcount == 0:
                raise NotFound(f"{kind} {name!r}")

    def delete(self, kind: Kind, name: str) -> bool:
        """Remove a resource; whether there was one. Its tags are the caller's (keyed by ARN)."""
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM resources WHERE kind = ? AND name_key = ?",
                (Kind(kind).value, name.lower()),
            )
            return cursor.rowcount > 0

    def all(self, kind: Kind) -> Records:
        """Every record of ``kind``, oldest first (for re-adopting resources after a restart)."""
        rows = self._read(
            "SELECT record FROM resources WHERE kind = ? ORDER BY creation_time, name_key",
            (Kind(kind).value,),
        )
        return [_load(row[0]) for row in rows]

    def list(self, kind: Kind, query: ListQuery) -> tuple[Records, str | None]:
        """One page of ``kind`` matching ``query``, and the NextToken of the next (or None)."""
        kind = Kind(kind)
        fingerprint = query.fingerprint(kind)
        column = _SORT_COLUMNS[query.sort_by]
        order, beyond = _ORDERS[query.sort_order]
        where, args = ["kind = ?"], _Args([kind.value])
        needle = query.name_contains.lower() if query.name_contains else None
        for clause, value in (
            ("instr(name_key, ?) > 0", needle),  # instr, not LIKE: no wildcards to escape
            ("creation_time < ?", query.creation_time_before),
            ("creation_time >= ?", query.creation_time_after),
            ("last_modified_time < ?", query.last_modified_time_before),
            ("last_modified_time > ?", query.last_modified_time_after),
            ("status = ?", query.status_equals),
        ):
            if value is not None:
                where.append(clause)
                args.append(value)
        if query.next_token:
            position = self._unseal(query.next_token, fingerprint)
            if not (isinstance(position, list) and len(position) == 2):
                raise InvalidToken("the NextToken is malformed")
            where.append(f"({column}, name_key) {beyond} (?, ?)")
            args.extend(position)
        sql = (
            f"SELECT {column}, name_key, record FROM resources WHERE {' AND '.join(where)} "  # noqa: S608
            f"ORDER BY {column} {order}, name_key {order} LIMIT ?"
        )
        rows = self._read(sql, [*args, query.max_results + 1])
        page = rows[: query.max_results]
        token = None
        if len(rows) > query.max_results:
            token = self._seal(fingerprint, [page[-1][0], page[-1][1]])
        return [_load(row[2]) for row in page], token

    page = list  # the name the first control plane calls it by

    # ---- tags, keyed by resource ARN ---------------------------------------------------------
    def add_tags(self, arn: str, tags: Tags) -> None:
        """Set tags (Key/Value); a key already present takes the new value and keeps its place."""
        with self._write() as db:
            db.executemany(
                "INSERT INTO tags (arn, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (arn, key) DO UPDATE SET value = excluded.value",
                [(arn, tag["Key"], tag.get("Value", "")) for tag in tags],
            )

    def list_tags(
        self, arn: str, max_results: int, next_token: str | None
    ) -> tuple[Tags, str | None]:
        """One page of ``arn``'s tags in the order they were first added, and the NextToken."""
        if max_results < 1:
            raise ValueError(f"max_results must be at least 1: {max_results}")
        fingerprint = hashlib.sha256(f"tags\0{arn}".encode()).hexdigest()[:16]
        after = 0
        if next_token:
            after = self._unseal(next_token, fingerprint)
            if not isinstance(after, int):
                raise InvalidToken("the NextToken is malformed")
        rows = self._read(
            "SELECT id, key, value FROM tags WHERE arn = ? AND id > ? ORDER BY id LIMIT ?",
            (arn, after, max_results + 1),
        )
        page = rows[:max_results]
        token = self._seal(fingerprint, page[-1][0]) if len(rows) > max_results else None
        return [{"Key": key, "Value": value} for _, key, value in page], token

    def delete_tags(self, arn: str, keys: Sequence[str]) -> None:
        """Remove the named keys; keys the resource does not have are ignored, as AWS does."""
        with self._write() as db:
            db.executemany(
                "DELETE FROM tags WHERE arn = ? AND key = ?", [(arn, key) for key in keys]
            )

    def delete_all_tags(self, arn: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM tags WHERE arn = ?", (arn,))

    # ---- tokens ------------------------------------------------------------------------------
    def _seal(self, fingerprint: str, position: Any) -> str:
        payload = json.dumps({"f": fingerprint, "p": position}, separators=(",", ":")).encode()
        signature = hmac.digest(self._secret, payload, "sha256")[:_SIG_BYTES]
        return base64.urlsafe_b64encode(signature + payload).decode()

    def _unseal(self, token: str, fingerprint: str) -> Any:
        try:
            raw = base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        except ValueError:  # binascii.Error and non-ASCII text are both ValueErrors
            raise InvalidToken("the NextToken is not one this service issued") from None
        signature, payload = raw[:_SIG_BYTES], raw[_SIG_BYTES:]
        expected = hmac.digest(self._secret, payload, "sha256")[:_SIG_BYTES]
        if not hmac.compare_digest(signature, expected):
            raise InvalidToken("the NextToken is not one this service issued")
        data = json.loads(payload)  # signed by us, so well-formed
        if data["f"] != fingerprint:
            raise InvalidToken("the NextToken belongs to another listing")
        return data["p"]


def _timestamp(record: Record, key: str, default: float) -> float:
    value = record.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{key} must be epoch seconds (a number), not {type(value).__name__}")
    return float(value)


def _dump(record: Record) -> str:
    return json.dumps(record, separators=(",", ":"), allow_nan=False)


def _load(text: str) -> Record:
    record: Record = json.loads(text)
    return record
