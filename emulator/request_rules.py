"""InvokeEndpoint's input rules, read from botocore's own service model.

Endpoint-name rules, which headers SageMaker forwards, their length and character limits and
the 6 MiB body limit all come from ``sagemaker-runtime``'s model, so the emulator rejects
exactly what the service would and a botocore upgrade carries new headers along. Violations
become the ValidationError text AWS uses ("1 validation error detected: ...").
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

import botocore.session

from smlocal.emulator.aws_errors import validation_error

__all__ = ["HeaderRule", "InvokeRules", "invoke_rules"]

# Java regex classes used by AWS models that Python's `re` lacks.
_JAVA_CLASSES = {
    r"[\p{Print}]": r"[\x20-\x7e]",
    r"[\p{ASCII}]": r"[\x00-\x7f]",
    r"\p{ASCII}": r"[\x00-\x7f]",
    r"\p{Print}": r"[\x20-\x7e]",
    r"\z": r"\Z",
}


def _python_pattern(java_pattern: str) -> re.Pattern[str]:
    for java, python in _JAVA_CLASSES.items():
        java_pattern = java_pattern.replace(java, python)
    return re.compile(java_pattern)


@dataclass(frozen=True)
class HeaderRule:
    member: str
    header: str
    # The name the container receives it under: InvokeEndpoint's header for the same member
    # (InvokeEndpointWithResponseStream's X-Amzn-SageMaker-Accept reaches it as Accept).
    forward_as: str
    min_length: int
    max_length: int | None
    pattern: re.Pattern[str] | None
    raw_pattern: str | None
    sensitive: bool


def _problems(
    member: str,
    value: str,
    *,
    min_length: int,
    max_length: int | None,
    pattern: re.Pattern[str] | None,
    raw_pattern: str | None,
    sensitive: bool,
) -> list[str]:
    """Every constraint ``value`` breaks, each in AWS's words."""
    size = len(value)
    if (
        size >= min_length
        and (max_length is None or size <= max_length)
        and (pattern is None or pattern.fullmatch(value))
    ):
        return []  # the usual case, on every request: no message is built
    shown = "***" if sensitive else value
    where = f"Value '{shown}' at '{member[0].lower() + member[1:]}' failed to satisfy constraint:"
    found = []
    if len(value) < min_length:
        found.append(f"{where} Member must have length greater than or equal to {min_length}")
    if max_length is not None and len(value) > max_length:
        found.append(f"{where} Member must have length less than or equal to {max_length}")
    if pattern is not None and not pattern.fullmatch(value):
        found.append(f"{where} Member must satisfy regular expression pattern: {raw_pattern}")
    return found


def _raise_if_any(problems: list[str]) -> None:
    """AWS's aggregated ValidationError: ``N validation errors detected: ...; ...``."""
    if problems:
        noun = "error" if len(problems) == 1 else "errors"
        raise validation_error(f"{len(problems)} validation {noun} detected: {'; '.join(problems)}")


@dataclass(frozen=True)
class InvokeRules:
    """What InvokeEndpoint accepts, per botocore's model."""

    endpoint_name_max: int
    endpoint_name_pattern: re.Pattern[str]
    endpoint_name_raw_pattern: str
    max_body_bytes: int
    headers: tuple[HeaderRule, ...]

    def check_endpoint_name(self, name: str) -> None:
        _raise_if_any(self._name_problems(name))

    def _name_problems(self, name: str) -> list[str]:
        return _problems(
            "EndpointName",
            name,
            min_length=1,
            max_length=self.endpoint_name_max,
            pattern=self.endpoint_name_pattern,
            raw_pattern=self.endpoint_name_raw_pattern,
            sensitive=False,
        )

    def forwarded_headers(
        self, request_headers: Mapping[str, str], *, endpoint_name: str | None = None
    ) -> dict[str, str]:
        """The modelled headers present in ``request_headers``, validated; others dropped.

        Raises AwsError(ValidationError) naming every constraint broken, the endpoint name's
        (when given) first, as AWS reports them all at once.
        """
        problems = self._name_problems(endpoint_name) if endpoint_name is not None else []
        forwarded: dict[str, str] = {}
        for rule in self.headers:
            value = request_headers.get(rule.header)
            if value is None:
                continue
            problems += _problems(
                rule.member,
                value,
                min_length=rule.min_length,
                max_length=rule.max_length,
                pattern=rule.pattern,
                raw_pattern=rule.raw_pattern,
                sensitive=rule.sensitive,
            )
            forwarded[rule.forward_as] = value
        _raise_if_any(problems)
        return forwarded


def _header_name(shape: object, member: str) -> str | None:
    members = getattr(shape, "members", {})
    if member not in members or members[member].serialization.get("location") != "header":
        return None
    return str(members[member].serialization["name"]).lower()


@functools.cache
def invoke_rules(operation: str = "InvokeEndpoint") -> InvokeRules:
    """The input rules of ``operation`` (InvokeEndpoint or InvokeEndpointWithResponseStream)."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model(operation).input_shape
    plain = model.operation_model("InvokeEndpoint").input_shape
    if shape is None or plain is None:  # pragma: no cover - the model always has them
        raise RuntimeError(f"botocore's sagemaker-runtime model has no {operation} input")
    name_meta = shape.members["EndpointName"].metadata
    headers = []
    for member, member_shape in shape.members.items():
        header = _header_name(shape, member)
        if header is None:
            continue
        meta = member_shape.metadata
        raw = meta.get("pattern")
        headers.append(
            HeaderRule(
                member=member,
                header=header,
                forward_as=_header_name(plain, member) or header,
                min_length=int(meta.get("min", 0)),
                max_length=int(meta["max"]) if "max" in meta else None,
                pattern=_python_pattern(raw) if raw else None,
                raw_pattern=raw,
                sensitive=bool(meta.get("sensitive", False)),
            )
        )
    return InvokeRules(
        endpoint_name_max=int(name_meta["max"]),
        endpoint_name_pattern=_python_pattern(name_meta["pattern"]),
        endpoint_name_raw_pattern=name_meta["pattern"],
        # The streaming operation's model gives the body no max; the service applies the same
        # 6 MiB request limit.
        max_body_bytes=int(plain.members["Body"].metadata["max"]),
        headers=tuple(headers),
    )
