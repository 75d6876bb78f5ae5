"""Request bodies that a container must refuse cleanly: fixed malformed ones and Hypothesis-made.

Generation is kept apart from sending: Hypothesis only produces bodies here (derandomized, no
shrinking, no example database), so a run is reproducible and its time is bounded; the check
sends them afterwards and judges every answer.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

__all__ = ["MALFORMED", "generated_bodies", "malformed_bodies"]

MALFORMED: dict[str, tuple[bytes, ...]] = {
    "application/json": (
        b"",
        b"{",
        b'{"instances": [[1, 2',
        b"\xff\xfe\x00garbage",
        b"null",
        b'"a string"',
        b"NaN",
        b'{"instances": "not a list"}',
    ),
    "text/csv": (b"", b"a,b,c\n", b"1,2\n3\n", b"\x00\x01\x02", b",,,\n", b"1e999,nan,inf,-\n"),
}
_GENERIC: tuple[bytes, ...] = (b"", b"\x00\xff\xfe", b"{", b"smlocal malformed body")

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
_json_values = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=20,
)
_cell = st.floats(allow_nan=True, allow_infinity=True).map(repr) | st.text(
    alphabet=st.characters(blacklist_characters=',\r\n"', codec="utf-8"), max_size=8
)
_csv = st.lists(st.lists(_cell, min_size=1, max_size=6), min_size=1, max_size=5).map(
    lambda rows: ("\n".join(",".join(row) for row in rows) + "\n").encode()
)
_STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "application/json": _json_values.map(lambda v: json.dumps(v).encode())
    | st.binary(max_size=128),
    "text/csv": _csv | st.binary(max_size=128),
}


def malformed_bodies(content_type: str) -> tuple[bytes, ...]:
    return MALFORMED.get(content_type, _GENERIC)


def generated_bodies(content_type: str, count: int) -> list[bytes]:
    """Up to ``count`` distinct Hypothesis-generated bodies for ``content_type``."""
    strategy = _STRATEGIES.get(content_type, st.binary(max_size=256))
    bodies: list[bytes] = []

    @settings(
        max_examples=count,
        database=None,
        derandomize=True,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(body: Any) -> None:
        if body not in bodies:
            bodies.append(body)

    collect()
    return bodies[:count]
