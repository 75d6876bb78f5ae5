"""What a container's answer headers may carry back to the client, from botocore's own model.

InvokeEndpoint's output shape gives ``Content-Type`` and ``X-Amzn-SageMaker-Custom-Attributes``
at most 1024 characters of ``\\p{ASCII}``, and AWS documents the response CustomAttributes as
"no more than 1024 visible US-ASCII characters". A container that answers anything else (an
``é`` or ``€`` in either header, a control character, or more than 1024 characters) broke the
hosting contract: the runtime API answers a ModelError naming the header instead of passing
bytes a client cannot read, or crashing on them (see README, "Conformance choices"). Nothing
here raises; callers turn the verdict into their own error.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import botocore.session

__all__ = ["AnswerHeaderRule", "answer_header_problem", "answer_header_rules"]

# The model's pattern for both headers is \p{ASCII}, but no HTTP answer can carry its control
# characters (uvicorn refuses to send them): what goes back is RFC 9110's field-value within
# ASCII, i.e. AWS's "visible US-ASCII characters", spaces and tabs.
_ASCII_PATTERN = r"\p{ASCII}*"
_VISIBLE = re.compile(r"[\t\x20-\x7e]*")
# What a rule shows of a bad value: enough to recognise it in the container's code.
_SHOWN = 64


@dataclass(frozen=True)
class AnswerHeaderRule:
    member: str  # the output member: ContentType, CustomAttributes
    header: str  # the container's header, as the model spells it
    max_length: int


@functools.cache
def answer_header_rules() -> tuple[AnswerHeaderRule, ...]:
    """InvokeEndpoint's output headers that come from the container, with their limits."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpoint").output_shape
    if shape is None:  # pragma: no cover - the model always has it
        raise RuntimeError("botocore's sagemaker-runtime model has no InvokeEndpoint output")
    rules = []
    for member in ("ContentType", "CustomAttributes"):
        member_shape = shape.members[member]
        if member_shape.metadata.get("pattern") != _ASCII_PATTERN:  # pragma: no cover
            raise RuntimeError(f"botocore's {member} pattern changed: review answer_headers")
        rules.append(
            AnswerHeaderRule(
                member=member,
                header=str(member_shape.serialization["name"]),
                max_length=int(member_shape.metadata["max"]),
            )
        )
    return tuple(rules)


def _shown(value: str) -> str:
    # aiohttp keeps undecodable bytes as surrogates: show them as the bytes they were.
    raw = value.encode("utf-8", "surrogateescape")
    text = repr(raw.decode("utf-8", "backslashreplace"))
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def answer_header_problem(headers: Mapping[str, str]) -> str | None:
    """Why the container's answer ``headers`` cannot go back, or None.

    ``headers`` is case-insensitive, as aiohttp's ``response.headers`` is.
    """
    for rule in answer_header_rules():
        value = headers.get(rule.header)
        if value is None:
            continue
        if not _VISIBLE.fullmatch(value):
            return (
                f"its {rule.header} header {_shown(value)} is not visible US-ASCII "
                f"(SageMaker's {rule.member} is at most {rule.max_length} US-ASCII characters)"
            )
        if len(value) > rule.max_length:
            return (
                f"its {rule.header} header is {len(value)} characters long "
                f"(SageMaker's {rule.member} is at most {rule.max_length})"
            )
    return None
