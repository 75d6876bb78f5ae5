"""Control-plane input checked against botocore's own SageMaker model, worded as AWS words it.

Every constraint the model carries is checked: required members, string/list/map lengths,
numeric ranges, patterns (whole-value match) and enums, depth-first in the model's member
order, and all violations are reported at once (reference §A.3):
``2 validation errors detected: Value 'x' at 'productionVariants.1.member.modelName' failed to
satisfy constraint: Member must satisfy regular expression pattern: ...; Value ...``.
Paths are camelCase with 1-based list indices and ``.member.``.

Documented choices: a value of the wrong JSON type is a ``SerializationException`` (as AWS's
JSON services answer); members the model does not have are ignored; map entries are reported
at ``name.KEY.member`` (no public AWS sample found); a pattern Python's ``re`` cannot compile
is skipped (logged once). smlocal's one extension: a model location (``ModelDataUrl``,
``S3DataSource.S3Uri``) may be a local path (``/path/model.tar.gz``, ``./dir``, ``file://``),
which AWS's pattern refuses.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, Shape, StructureShape

from smlocal.emulator.aws_errors import AwsError

__all__ = ["validate_input", "violations"]

log = logging.getLogger(__name__)

_NUMERIC = {"integer", "long", "float", "double"}
# Members whose pattern a local path may skip (the documented extension above).
_LOCAL_PATH_MEMBERS = ("modelDataUrl", "s3Uri")


def _local_path(path: str, value: Any) -> bool:
    if not isinstance(value, str) or not path.endswith(_LOCAL_PATH_MEMBERS):
        return False
    return value.startswith("file://") or "://" not in value


@functools.cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        log.debug("pattern %r is not a Python regex; not checked", pattern)
        return None


def _camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"'{str(value).lower()}'"
    if isinstance(value, list):
        return "'[" + ", ".join(str(v) for v in value) + "]'"
    if isinstance(value, dict):
        return "'{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}'"
    return f"'{value}'"


def _wrong_type(path: str, shape: Shape) -> AwsError:
    return AwsError(
        "SerializationException",
        f"Value at '{path or 'input'}' is not of the modelled type {shape.type_name}.",
    )


def _check_type(value: Any, shape: Shape, path: str) -> None:
    kind = shape.type_name
    ok = {
        "structure": isinstance(value, dict),
        "list": isinstance(value, list),
        "map": isinstance(value, dict),
        "string": isinstance(value, str),
        "boolean": isinstance(value, bool),
        "blob": isinstance(value, str),
        "timestamp": isinstance(value, (int, float, str)) and not isinstance(value, bool),
    }.get(kind)
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind in ("float", "double"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok is False:
        raise _wrong_type(path, shape)


def _constraints(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    meta = shape.metadata
    where = f"Value {_render(value)} at '{path}' failed to satisfy constraint: Member must"
    if shape.type_name in ("string", "list", "map", "blob"):
        size = len(value)
        if "min" in meta and size < meta["min"]:
            out.append(f"{where} have length greater than or equal to {meta['min']}")
        if "max" in meta and size > meta["max"]:
            out.append(f"{where} have length less than or equal to {meta['max']}")
    if shape.type_name in _NUMERIC:
        if "min" in meta and value < meta["min"]:
            out.append(f"{where} have value greater than or equal to {meta['min']}")
        if "max" in meta and value > meta["max"]:
            out.append(f"{where} have value less than or equal to {meta['max']}")
    if shape.type_name == "string":
        enum: list[str] = getattr(shape, "enum", None) or []
        if enum and value not in enum:
            out.append(f"{where} satisfy enum value set: [{', '.join(enum)}]")
        pattern = meta.get("pattern")
        compiled = _pattern(pattern) if pattern and not _local_path(path, value) else None
        if compiled is not None and compiled.fullmatch(value) is None:
            out.append(f"{where} satisfy regular expression pattern: {pattern}")


def _walk(value: Any, shape: Shape, path: str, out: list[str]) -> None:
    _check_type(value, shape, path)
    _constraints(value, shape, path, out)
    if isinstance(shape, StructureShape):
        members = shape.members
        for name in shape.required_members:
            if value.get(name) is None:
                out.append(
                    f"Value null at '{_join(path, _camel(name))}' failed to satisfy "
                    "constraint: Member must not be null"
                )
        for name, member in members.items():
            if value.get(name) is not None:
                _walk(value[name], member, _join(path, _camel(name)), out)
    elif isinstance(shape, ListShape):
        for index, item in enumerate(value, 1):
            _walk(item, shape.member, f"{path}.{index}.member", out)
    elif isinstance(shape, MapShape):
        for key, item in value.items():
            _walk(key, shape.key, f"{path}.{key}.key", out)
            _walk(item, shape.value, f"{path}.{key}.member", out)


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def violations(operation: str, params: Mapping[str, Any]) -> list[str]:
    """Every violated constraint of ``operation``'s input, as AWS words it."""
    shape = _model().operation_model(operation).input_shape
    out: list[str] = []
    if shape is not None:
        _walk(dict(params), shape, "", out)
    return out


def validate_input(operation: str, params: Mapping[str, Any]) -> None:
    """Raise ValidationException listing every violation (SerializationException for types)."""
    found = violations(operation, params)
    if found:
        count = len(found)
        noun = "error" if count == 1 else "errors"
        raise AwsError(
            "ValidationException", f"{count} validation {noun} detected: {'; '.join(found)}"
        )
