"""The service's SQLite store: records, case-insensitive names, durability, listing, tags."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smlocal.emulator.service.store import (
    SCHEMA_VERSION,
    AlreadyExists,
    InvalidToken,
    Kind,
    ListQuery,
    NotFound,
    Store,
    StoreVersionError,
)

ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint/ep"
# Inserts PREFIX-0, PREFIX-1, ... (COUNT of them, or forever if COUNT < 0), printing each name
# only after insert() returned, i.e. after the commit.
CHILD = """
import sys, time
from pathlib import Path
from smlocal.emulator.service.store import Kind, Store
store = Store(Path(sys.argv[1]))
prefix, count, i = sys.argv[2], int(sys.argv[3]), 0
while count < 0 or i < count:
    name = f"{prefix}-{i}"
    store.insert(Kind.ENDPOINT, name, {"EndpointName": name, "Pad": "x" * 2000})
    print(name, flush=True)
    i += 1
"""


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "state.db") as opened:
        yield opened


def _record(name: str, created: float, **extra: Any) -> dict[str, Any]:
    return {"EndpointName": name, "CreationTime": created, **extra}


def _fill(store: Store, count: int) -> list[tuple[str, float, str]]:
    """``count`` endpoints with creation-time and status ties and mixed-case names."""
    rows = [
        (
            f"{'EP' if i % 2 else 'ep'}-{i:02d}",
            1000.0 + i // 3,
            ["InService", "Creating", "Failed"][i % 3],
        )
        for i in range(count)
    ]
    for name, created, status in rows:
        store.insert(Kind.ENDPOINT, name, _record(name, created), status=status)
    return rows


def _all_pages(store: Store, kind: Kind, query: ListQuery) -> list[list[dict[str, Any]]]:
    pages, token = [], None
    while True:
        page, token = store.list(kind, replace(query, next_token=token))
        pages.append(page)
        if token is None:
            return pages


def _expected(rows: list[tuple[str, float, str]], sort_by: str, order: str) -> list[str]:
    column = {"Name": 0, "CreationTime": 1, "Status": 2}[sort_by]
    ordered = sorted(rows, key=lambda r: (r[column] if column else r[0].lower(), r[0].lower()))
    names = [r[0] for r in ordered]
    return names[::-1] if order == "Descending" else names


# ---- records ------------------------------------------------------------------------------
def test_insert_get_replace_delete(store: Store) -> None:
    store.insert(Kind.MODEL, "m", {"ModelName": "m", "CreationTime": 5.0})
    assert store.get(Kind.MODEL, "m") == {"ModelName": "m", "CreationTime": 5.0}
    assert store.get(Kind.ENDPOINT, "m") is None  # kinds are separate namespaces
    store.insert(Kind.ENDPOINT, "m", {"EndpointName": "m"}, status="Creating")

    store.replace(Kind.ENDPOINT, "m", {"EndpointName": "m", "LastModifiedTime": 9.0}, status="X")
    assert store.get(Kind.ENDPOINT, "m") == {"EndpointName": "m", "LastModifiedTime": 9.0}
    with pytest.raises(NotFound):
        store.replace(Kind.ENDPOINT, "nope", {})

    assert store.delete(Kind.MODEL, "m") is True
    assert store.delete(Kind.MODEL, "m") is False
    assert store.get(Kind.MODEL, "m") is None
    assert store.get(Kind.ENDPOINT, "m") is not None


def test_names_collide_case_insensitively(store: Store) -> None:
    store.insert(Kind.ENDPOINT, "Iris", {"EndpointName": "Iris"})
    with pytest.raises(AlreadyExists):
        store.insert(Kind.ENDPOINT, "iris", {"EndpointName": "iris"})
    assert store.get(Kind.ENDPOINT, "IRIS") == {"EndpointName": "Iris"}  # the name as given
    store.replace(Kind.ENDPOINT, "iRiS", {"EndpointName": "Iris", "v": 2})
    assert store.all(Kind.ENDPOINT) == [{"EndpointName": "Iris", "v": 2}]
    assert store.delete(Kind.ENDPOINT, "iris")


def test_timestamp_columns_follow_the_record(store: Store) -> None:
    store.insert(Kind.ENDPOINT, "a", _record("a", 100.0, LastModifiedTime=100.0))
    store.replace(Kind.ENDPOINT, "a", _record("a", 555.0, LastModifiedTime=200.0))
    # creation_time stays where insert put it; last-modified moved to the record's.
    created = ListQuery(creation_time_before=101.0)
    assert [r["EndpointName"] for r in store.list(Kind.ENDPOINT, created)[0]] == ["a"]
    assert store.list(Kind.ENDPOINT, ListQuery(last_modified_time_after=150.0))[0]
    with pytest.raises(TypeError):
        store.insert(Kind.ENDPOINT, "b", {"CreationTime": "2024-01-01"})


def test_state_survives_a_new_store_on_the_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with Store(path) as first:
        _fill(first, 12)
        first.add_tags(ARN, [{"Key": "k", "Value": "v"}])
        page, token = first.list(Kind.ENDPOINT, ListQuery(max_results=5))
    with Store(path) as second:
        assert len(second.all(Kind.ENDPOINT)) == 12
        assert second.list_tags(ARN, 50, None) == ([{"Key": "k", "Value": "v"}], None)
        # A token outlives the process that issued it (the secret is in the file).
        rest, _ = second.list(Kind.ENDPOINT, ListQuery(max_results=5, next_token=token))
        assert not {r["EndpointName"] for r in page} & {r["EndpointName"] for r in rest}


def test_sigkill_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), "ep", "-1"], stdout=subprocess.PIPE, text=True
    )
    assert child.stdout is not None
    committed = [child.stdout.readline().strip() for _ in range(300)]
    assert all(committed), "the child died before it was killed"
    os.kill(child.pid, signal.SIGKILL)  # mid-loop: it is inserting as fast as it can
    committed += child.stdout.read().split()  # printed before the kill landed
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert Path(f"{path}-wal").exists()  # nothing checkpointed it: recovery reads the WAL

    with Store(path) as reopened:
        names = {r["EndpointName"] for r in reopened.all(Kind.ENDPOINT)}
    assert set(committed) <= names
    assert len(names) - len(committed) <= 1  # at most the one committed but not yet printed
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_two_processes_write_one_file(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, str(path), prefix, "60"])
        for prefix in ("a", "b")
    ]
    assert [c.wait(timeout=60) for c in children] == [0, 0]
    with Store(path) as store:
        assert len(store.all(Kind.ENDPOINT)) == 120


def test_threads_insert_concurrently(store: Store) -> None:
    def work(thread: int) -> None:
        for i in range(50):
            store.insert(Kind.MODEL, f"t{thread}-{i}", {"ModelName": f"t{thread}-{i}"})
            store.list(Kind.MODEL, ListQuery(max_results=3))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.all(Kind.MODEL)) == 200


def test_file_is_the_owners_only(tmp_path: Path) -> None:
    path = tmp_path / "new-dir" / "state.db"
    with Store(path) as store:
        store.insert(Kind.MODEL, "m", {})
        for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreVersionError, match=r"schema v2; this smlocal reads up to v1"):
        Store(path)


# ---- listing ------------------------------------------------------------------------------
@pytest.mark.parametrize("sort_by", ["Name", "CreationTime", "Status"])
@pytest.mark.parametrize("order", ["Ascending", "Descending"])
def test_pages_of_ten_cover_everything_once(store: Store, sort_by: str, order: str) -> None:
    rows = _fill(store, 25)
    query = ListQuery(sort_by=sort_by, sort_order=order, max_results=10)
    pages = _all_pages(store, Kind.ENDPOINT, query)
    assert [len(p) for p in pages] == [10, 10, 5]
    names = [r["EndpointName"] for p in pages for r in p]
    assert names == _expected(rows, sort_by, order)
    assert len(set(names)) == 25


def test_default_is_newest_first_ten(store: Store) -> None:
    _fill(store, 12)
    page, token = store.list(Kind.ENDPOINT, ListQuery())
    assert len(page) == 10 and token
    assert page[0]["EndpointName"] == "EP-11"  # newest (1003), then the larger name first


def test_paging_is_stable_while_records_are_added(store: Store) -> None:
    _fill(store, 25)
    query = ListQuery(sort_by="Name", sort_order="Ascending", max_results=10)
    first, token = store.list(Kind.ENDPOINT, query)
    for name in ("aaa", "ep-005", "zzz"):  # before, inside, after the remaining pages
        store.insert(Kind.ENDPOINT, name, _record(name, 1.0))
    second, token = store.list(Kind.ENDPOINT, replace(query, next_token=token))
    third, _ = store.list(Kind.ENDPOINT, replace(query, next_token=token))
    names = [r["EndpointName"] for r in first + second + third]
    assert len(names) == len(set(names))
    assert {f"{'EP' if i % 2 else 'ep'}-{i:02d}" for i in range(25)} <= set(names)
    assert "aaa" not in names  # sorts before the page already seen


def test_filters(store: Store) -> None:
    _fill(store, 9)  # creation times 1000 x3, 1001 x3, 1002 x3

    def names(**filters: Any) -> list[str]:
        query = ListQuery(sort_by="Name", sort_order="Ascending", max_results=100, **filters)
        return [r["EndpointName"] for r in store.list(Kind.ENDPOINT, query)[0]]

    assert names(name_contains="Ep-0") == [f"{'EP' if i % 2 else 'ep'}-{i:02d}" for i in range(9)]
    assert names(name_contains="p-07") == ["EP-07"]
    assert names(name_contains="zz") == []
    assert names(creation_time_before=1001.0) == ["ep-00", "EP-01", "ep-02"]  # strict
    assert names(creation_time_after=1002.0) == ["ep-06", "EP-07", "ep-08"]  # inclusive
    assert names(status_equals="Failed") == ["ep-02", "EP-05", "ep-08"]
    assert names(status_equals="Failed", creation_time_after=1001.5) == ["ep-08"]
    assert names(last_modified_time_after=1001.0) == ["ep-06", "EP-07", "ep-08"]  # strict
    assert names(last_modified_time_before=1000.5) == ["ep-00", "EP-01", "ep-02"]


def test_bad_tokens_are_refused(store: Store) -> None:
    _fill(store, 5)
    _, token = store.list(Kind.ENDPOINT, ListQuery(max_results=2))
    assert token
    store.list(Kind.ENDPOINT, ListQuery(max_results=3, next_token=token))  # page size may change
    forged = token[:-4] + ("AAAA" if token[-4:] != "AAAA" else "BBBB")
    for bad in ("garbage", "e30=", "ünïcode", forged, "x" * 9):
        with pytest.raises(InvalidToken):
            store.list(Kind.ENDPOINT, ListQuery(max_results=2, next_token=bad))
    for kind, other in (
        (Kind.ENDPOINT, ListQuery(sort_by="Name")),
        (Kind.ENDPOINT, ListQuery(name_contains="ep")),
        (Kind.ENDPOINT, ListQuery(sort_order="Ascending")),
        (Kind.MODEL, ListQuery()),
    ):
        with pytest.raises(InvalidToken, match="another listing"):
            store.list(kind, replace(other, next_token=token))
    with pytest.raises(InvalidToken):
        store.list_tags(ARN, 50, token)


def test_query_members_are_checked() -> None:
    for bad in (
        {"sort_by": "Size"},
        {"sort_order": "Up"},
        {"max_results": 0},
        {"max_results": 101},
    ):
        with pytest.raises(ValueError):
            ListQuery(**bad)
    with pytest.raises(TypeError, match="epoch seconds"):
        ListQuery(creation_time_after="2024-01-01T00:00:00Z")  # type: ignore[arg-type]


# ---- tags ---------------------------------------------------------------------------------
def test_tags(store: Store) -> None:
    store.add_tags(ARN, [{"Key": f"k{i}", "Value": str(i)} for i in range(5)])
    store.add_tags(ARN, [{"Key": "k1", "Value": "new"}, {"Key": "K1", "Value": "case"}])
    store.add_tags(ARN + "2", [{"Key": "k0", "Value": "other"}])

    pages, token = [], None
    while True:
        page, token = store.list_tags(ARN, 2, token)
        pages.append(page)
        if token is None:
            break
    assert [len(p) for p in pages] == [2, 2, 2]
    tags = [t for p in pages for t in p]
    assert tags[1] == {"Key": "k1", "Value": "new"}  # overwritten in place
    assert [t["Key"] for t in tags] == ["k0", "k1", "k2", "k3", "k4", "K1"]  # keys are exact

    store.delete_tags(ARN, ["k0", "k3", "missing"])
    assert [t["Key"] for t in store.list_tags(ARN, 50, None)[0]] == ["k1", "k2", "k4", "K1"]
    store.delete_all_tags(ARN)
    assert store.list_tags(ARN, 50, None) == ([], None)
    assert store.list_tags(ARN + "2", 50, None)[0] == [{"Key": "k0", "Value": "other"}]
    store.add_tags(ARN, [{"Key": "a", "Value": ""}, {"Key": "b", "Value": ""}])
    _, token = store.list_tags(ARN, 1, None)
    with pytest.raises(InvalidToken, match="another listing"):
        store.list_tags(ARN + "2", 1, token)
    with pytest.raises(InvalidToken):
        store.list_tags(ARN, 1, "bm9wZQ==")


# ---- properties ---------------------------------------------------------------------------
NAMES = st.from_regex(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*", fullmatch=True).filter(lambda n: len(n) <= 63)
UNIQUE_NAMES = st.lists(NAMES, min_size=1, max_size=25, unique_by=str.lower)
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(UNIQUE_NAMES)
def test_any_valid_name_round_trips(names: list[str]) -> None:
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "s.db") as store:
        for n, name in enumerate(names):
            store.insert(Kind.ENDPOINT, name, _record(name, float(n)))
        for n, name in enumerate(names):
            for spelling in (name, name.upper(), name.lower()):
                assert store.get(Kind.ENDPOINT, spelling) == _record(name, float(n))
            with pytest.raises(AlreadyExists):
                store.insert(Kind.ENDPOINT, name.swapcase(), {})
            found = store.list(
                Kind.ENDPOINT, ListQuery(name_contains=name.upper(), max_results=100)
            )
            assert name in [r["EndpointName"] for r in found[0]]
        assert [r["EndpointName"] for r in store.all(Kind.ENDPOINT)] == names


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(NAMES, st.sampled_from([1.0, 2.0, 2.5]), st.sampled_from(["A", "B", ""])),
        max_size=30,
        unique_by=lambda r: r[0].lower(),
    ),
    sort_by=st.sampled_from(["Name", "CreationTime", "Status"]),
    order=st.sampled_from(["Ascending", "Descending"]),
    page_size=st.integers(1, 12),
)
def test_pages_never_duplicate_or_drop(
    rows: list[tuple[str, float, str]], sort_by: str, order: str, page_size: int
) -> None:
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "s.db") as store:
        for name, created, status in rows:
            store.insert(Kind.ENDPOINT, name, _record(name, created), status=status)
        query = ListQuery(sort_by=sort_by, sort_order=order, max_results=page_size)
        pages = _all_pages(store, Kind.ENDPOINT, query)
    assert all(len(p) == page_size for p in pages[:-1]) and len(pages[-1]) <= page_size
    assert [r["EndpointName"] for p in pages for r in p] == _expected(rows, sort_by, order)
