"""Control-plane input checked against botocore's own SageMaker model, worded as AWS words it.

Owns the step between "the body parsed as JSON" and "the handler runs": every constraint the
model carries (required, length, numeric range, pattern, enum) is checked and all violations
are reported at once (reference §A.3): ``2 validation errors detected: Value 'x' at
'productionVariants.1.member.modelName' failed to satisfy constraint: Member must ...; ...``.
Paths are camelCase, nested with ``.``, list elements 1-based with ``.member``; violations come
depth-first in the model's member order (AWS's own order is undocumented). Each operation's
shape tree is compiled once, patterns included, so a call costs microseconds.

Documented choices (AWS's public samples where found, else ours):

* Scalars in a list or map are reported once, at the container, listing the element shape's
  rules, as AWS does (ACM, EventBridge, DynamoDB samples): ``Value '[sg_1]' at
  'vpcConfig.securityGroupIds' failed to satisfy constraint: Member must satisfy constraint:
  [Member must have length less than or equal to 32, ...]``; maps say ``Map keys must ...`` /
  ``Map value must ...``. Structures inside are walked at ``list.N.member.x`` and
  ``map.KEY.member.x`` (DynamoDB: ``requestItems.T.member.keys``). A null element is
  ``Value null at 'x.N.member' ... Member must not be null``.
* Values render as Java's ``toString`` (``'0'``, ``'[a, b]'``, ``'{K=v}'``, ``'1.0'`` for float
  shapes); a sensitive shape's value is left out (``Value at 'x'``), as AWS does.
* Lengths count code points (Smithy: "Unicode scalar values"). A pattern must match the whole
  value (Java ``matches()``); Java syntax is translated (``\\p{L}``, ``\\p{Alnum}``, surrogate
  pairs, ``${1,128}``, Java's ``.``); one that still will not compile is skipped (debug log).
* A wrong JSON type is ``SerializationException`` in Coral's words (``STRING_VALUE can not be
  converted to an Integer``, ``Start of list found where not expected``) plus ``(at 'path')``,
  and wins over validation errors (AWS deserializes first). Timestamps take epoch numbers or
  ISO-8601 strings; an integer member refuses a fractional number (AWS would truncate it).
* Members the model does not have are ignored; JSON ``null`` counts as absent.
* Limits AWS documents that the model lacks are checked after the model's own rules, in the
  same aggregated message: CreateModel's ``Environment`` maps ("The maximum length of each key
  and value in the Environment map is 1024 bytes. The maximum length of all keys and values in
  the map, combined, is 32 KB", all containers' maps together; API reference,
  ContainerDefinition). The model's 1024 counts characters; a value within it but over 1024
  UTF-8 bytes is reported as ``Map value must satisfy constraint: [Member must have length
  less than or equal to 1024 bytes]`` (keys are ASCII by their pattern), a total over 32768
  bytes as ``Value at 'primaryContainer.environment' failed to satisfy constraint: Member
  must have a combined length of all keys and values less than or equal to 32768 bytes`` (at
  ``containers`` when several maps add up to it). Both wordings are ours (no AWS sample found).
* smlocal's one extension: a model location (``ModelDataUrl``, ``S3Uri``) or a capture
  destination (``DestinationS3Uri``) may be a local path (``/path/model.tar.gz``, ``./dir``,
  ``file://...``), which AWS's pattern refuses.
"""

from __future__ import annotations

import functools
import logging
import operator
import re
import sys
import threading
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, OperationNotFoundError, Shape, StructureShape

from smlocal.emulator.aws_errors import AwsError

__all__ = ["input_members", "validate_input", "violations"]

log = logging.getLogger(__name__)

_Rule = tuple[str, Callable[[Any], bool] | None]  # (AWS's phrase, check; None = unenforceable)

# DestinationS3Uri: DataCaptureConfig may name a local directory (smlocal's extension).
_LOCAL_PATH_MEMBERS = frozenset({"ModelDataUrl", "S3Uri", "DestinationS3Uri"})
_FLOATS = frozenset({"float", "double"})
_JAVA_TYPE = {"timestamp": "Date", "blob": "ByteBuffer"}  # else the capitalised type name
# Java's POSIX classes (US-ASCII) as character-class bodies.
_POSIX = {"Lower": "a-z", "Upper": "A-Z", "Alpha": "a-zA-Z", "Digit": "0-9", "Alnum": "a-zA-Z0-9",
          "XDigit": "0-9a-fA-F", "ASCII": r"\x00-\x7F", "Graph": r"\x21-\x7E",
          "Print": r"\x20-\x7E", "Punct": r"\x21-\x2F\x3A-\x40\x5B-\x60\x7B-\x7E",
          "Blank": r" \t", "Space": r" \t\n\x0B\f\r", "Cntrl": r"\x00-\x1F\x7F"}  # fmt: skip
_JAVA_DOT = r"[^\n\r\x85\u2028\u2029]"  # Java's "." stops at every line terminator
# CreateModel's documented Environment limits (UTF-8 bytes) that botocore's model lacks.
_ENV_ENTRY_MAX_BYTES = 1024
_ENV_TOTAL_MAX_BYTES = 32 * 1024


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_whole(value: Any) -> bool:  # float(10**400) would overflow: ints are whole as they are
    return _is_number(value) and (isinstance(value, int) or float(value).is_integer())


def _is_iso8601(text: str) -> bool:
    try:
        datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


_TYPES: dict[str, Callable[[Any], bool]] = {
    **dict.fromkeys(("structure", "map"), lambda v: isinstance(v, dict)),
    **dict.fromkeys(("string", "blob"), lambda v: isinstance(v, str)),  # blob: base64 text
    **dict.fromkeys(("integer", "long"), _is_whole),
    **dict.fromkeys(("float", "double"), _is_number),
    "list": lambda v: isinstance(v, list),
    "boolean": lambda v: isinstance(v, bool),
    "timestamp": lambda v: _is_number(v) or (isinstance(v, str) and _is_iso8601(v)),
}


@dataclass(eq=False)
class _Node:
    """One shape, compiled."""

    kind: str
    rules: list[_Rule] = field(default_factory=list)
    rules_text: str = "[]"
    sensitive: bool = False
    members: list[tuple[str, str, _Node, bool]] = field(default_factory=list)  # wire, camel, ..
    element: _Node | None = None  # list member / map value
    key: _Node | None = None


@functools.cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("sagemaker")


@functools.cache
def _unicode_runs() -> list[tuple[str, int, int]]:
    """(category, first, last) over all code points: ~0.2 s, once, only if a pattern needs it."""
    runs: list[tuple[str, int, int]] = []
    start, previous = 0, unicodedata.category("\0")
    for point in range(1, sys.maxunicode + 1):
        category = unicodedata.category(chr(point))
        if category != previous:
            runs.append((previous, start, point - 1))
            start, previous = point, category
    return [*runs, (previous, start, sys.maxunicode)]


def _class_body(name: str) -> str:
    """The character-class body for Java's ``\\p{name}`` (POSIX or Unicode category)."""
    if name in _POSIX:
        return _POSIX[name]
    category = name.removeprefix("Is")
    if len(category) not in (1, 2) or not category.isalpha():
        raise re.error(f"unsupported Java class \\p{{{name}}}")
    spans: list[list[int]] = []
    for run_category, first, last in _unicode_runs():
        if run_category.startswith(category):
            if spans and spans[-1][1] == first - 1:
                spans[-1][1] = last
            else:
                spans.append([first, last])
    if not spans:
        raise re.error(f"unknown Unicode category {name}")
    return "".join(f"\\U{a:08X}-\\U{b:08X}" for a, b in spans)


def _python_regex(java: str) -> str:
    """Translate a Java regex to Python's ``re``; ``re.error`` for what has no translation."""
    out: list[str] = []
    in_class, i = False, 0
    while i < len(java):
        char, rest = java[i], java[i + 1 :]
        if char == "\\" and rest:
            escape = rest[0]
            pair = re.match(r"u(D[89AB][0-9A-F]{2})\\u(D[C-F][0-9A-F]{2})", rest, re.I)
            if escape in "pP" and rest[1:2] == "{":
                end = java.index("}", i)
                body = _class_body(java[i + 3 : end])
                if escape == "P" and in_class:
                    raise re.error("negated \\P inside a class")
                out.append(f"[^{body}]" if escape == "P" else body if in_class else f"[{body}]")
                i = end + 1
            elif pair:  # a UTF-16 surrogate pair is one astral code point in Java
                high, low = int(pair[1], 16) - 0xD800, int(pair[2], 16) - 0xDC00
                out.append(f"\\U{0x10000 + (high << 10) + low:08X}")
                i += 1 + pair.end()
            elif escape in "hHRXGecvQ0" or rest.startswith("x{"):
                raise re.error(f"no translation for Java escape \\{escape}")
            else:
                out.append({"z": r"\Z", "Z": r"(?=\n?\Z)"}.get(escape, "\\" + escape))
                i += 2
            continue
        if in_class and (char == "[" or java.startswith("&&", i)):
            raise re.error("Java class union or intersection")
        if char == "[":
            in_class = True
        elif char == "]" and in_class:
            in_class = False
        elif char == "." and not in_class:
            char = _JAVA_DOT
        elif char == "$" and not in_class and (quantifier := re.match(r"\{\d+(,\d*)?\}", rest)):
            i += len(quantifier[0])  # Java lets a boundary be repeated; it is still a boundary
        out.append(char)
        i += 1
    return "".join(out)


@functools.cache
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        # ASCII: Java's \d, \w, \s are ASCII-only; \p{..} classes are spelled out above.
        return re.compile(_python_regex(pattern), re.ASCII)
    except (re.error, ValueError) as error:
        log.debug("pattern %r has no Python translation (%s); not checked", pattern, error)
        return None


def _bound(
    measure: Callable[[Any], Any], compare: Callable[[Any, Any], Any], bound: Any
) -> Callable[[Any], bool]:
    return lambda value: bool(compare(measure(value), bound))


def _rules(shape: Shape, local_ok: bool) -> list[_Rule]:
    """The shape's constraints in the order AWS lists them: max, min, enum, pattern."""
    meta, kind = shape.metadata, shape.type_name
    rules: list[_Rule] = []
    sized = kind in ("string", "blob", "list", "map")
    measure: Callable[[Any], Any] = len if sized else lambda v: v
    show: Callable[[Any], Any] = float if kind in _FLOATS else lambda b: b
    if sized or kind in ("integer", "long", *_FLOATS):
        word = "length" if sized else "value"
        for limit, side, compare in (("max", "less", operator.le), ("min", "greater", operator.ge)):
            if limit in meta:
                phrase = f"have {word} {side} than or equal to {show(meta[limit])}"
                rules.append((phrase, _bound(measure, compare, meta[limit])))
    enum: list[str] = list(getattr(shape, "enum", None) or [])
    if kind == "string" and enum:
        rules.append((f"satisfy enum value set: [{', '.join(enum)}]", frozenset(enum).__contains__))
    pattern = meta.get("pattern")
    if kind == "string" and pattern:
        compiled = _regex(pattern)
        check = None
        if compiled is not None:
            match = compiled.fullmatch

            def check(v: str) -> bool:
                local = local_ok and (v.startswith("file://") or "://" not in v)
                return local or match(v) is not None

        rules.append((f"satisfy regular expression pattern: {pattern}", check))
    return rules


# A transform job's S3OutputPath may name a local directory too (`smlocal transform --output
# DIR`), as its input's S3Uri may.
_LOCAL_OUTPUT_MEMBERS = frozenset({"S3OutputPath"})
_built: dict[tuple[str, bool], _Node] = {}
_lock = threading.Lock()


def _node(shape: Shape, local_ok: bool = False) -> _Node:
    key = (shape.name, local_ok)
    if key in _built:
        return _built[key]
    document = bool(getattr(shape, "is_document_type", False))
    node = _built[key] = _Node("document" if document else shape.type_name)  # before children
    node.rules = [] if document else _rules(shape, local_ok)
    node.rules_text = "[" + ", ".join(f"Member must {phrase}" for phrase, _ in node.rules) + "]"
    node.sensitive = bool(shape.metadata.get("sensitive"))
    if document:
        return node
    if isinstance(shape, StructureShape):
        required = set(shape.required_members)
        for name, member in shape.members.items():
            child = _node(member, name in _LOCAL_PATH_MEMBERS or name in _LOCAL_OUTPUT_MEMBERS)
            node.members.append((name, name[:1].lower() + name[1:], child, name in required))
            node.sensitive |= child.sensitive
    elif isinstance(shape, ListShape):
        node.element = _node(shape.member)
        node.sensitive |= node.element.sensitive
    elif isinstance(shape, MapShape):
        node.key, node.element = _node(shape.key), _node(shape.value)
        node.sensitive |= node.key.sensitive or node.element.sensitive
    return node


@functools.cache
def input_members(operation: str) -> frozenset[str]:
    """The top-level members ``operation``'s input has in the model (the rest are dropped)."""
    shape = _model().operation_model(operation).input_shape
    return frozenset(shape.members) if shape is not None else frozenset()


@functools.cache
def _operation(operation: str) -> _Node | None:
    try:
        shape = _model().operation_model(operation).input_shape
    except OperationNotFoundError:
        raise ValueError(f"SageMaker has no operation named {operation!r}") from None
    with _lock:
        return None if shape is None else _node(shape)


def _java(value: Any, kind: str = "") -> str:
    """``value`` as Java's ``toString`` shows it (the text inside AWS's quotes)."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if kind in _FLOATS and _is_number(value):
        return repr(float(value))
    if isinstance(value, list):
        return "[" + ", ".join(_java(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_java(v)}" for k, v in value.items()) + "}"
    return str(value)


def _check_type(node: _Node, value: Any, path: str) -> None:
    if _TYPES.get(node.kind, lambda _: True)(value):  # a document takes any JSON
        return
    if isinstance(value, list):
        text = "Start of list found where not expected"
    elif isinstance(value, dict):
        text = "Start of structure or map found where not expected."
    else:
        token = "NUMBER" if _is_number(value) else "STRING" if isinstance(value, str) else value
        java = _JAVA_TYPE.get(node.kind, node.kind.capitalize())
        text = f"{str(token).upper()}_VALUE can not be converted to an {java}"
    raise AwsError("SerializationException", f"{text} (at '{path or 'input'}')")


def _broken(node: _Node, value: Any) -> list[str]:
    return [phrase for phrase, check in node.rules if check is not None and not check(value)]


def _say(node: _Node, value: Any, path: str, constraint: str) -> str:
    shown = "Value" if node.sensitive else f"Value '{_java(value, node.kind)}'"
    return f"{shown} at '{path}' failed to satisfy constraint: {constraint}"


def _null(path: str) -> str:
    return f"Value null at '{path}' failed to satisfy constraint: Member must not be null"


def _check(node: _Node, value: Any, path: str, out: list[str]) -> None:
    _check_type(node, value, path)
    out.extend(_say(node, value, path, f"Member must {p}") for p in _broken(node, value))
    _inner(node, value, path, out)


def _inner(node: _Node, value: Any, path: str, out: list[str]) -> None:
    """The members (structure) or elements (list, map) of an already type-checked value."""
    if node.kind == "structure":
        for wire, camel, child, required in node.members:
            item, where = value.get(wire), f"{path}.{camel}" if path else camel
            if item is not None:
                _check(child, item, where, out)
            elif required:
                out.append(_null(where))
        return
    if node.element is None:
        return
    if node.key is None:  # a list
        groups = [("Member", node.element, [(str(i), v) for i, v in enumerate(value, 1)])]
    else:
        keys = [(key, key) for key in value]
        groups = [("Map keys", node.key, keys), ("Map value", node.element, [*value.items()])]
    for label, element, items in groups:
        broken, present = False, []
        for segment, item in items:
            where = f"{path}.{segment}.member"
            if item is None:
                out.append(_null(where))
                continue
            _check_type(element, item, where)
            broken = broken or bool(_broken(element, item))
            present.append((item, where))
        if broken:  # one report at the container, listing all the element's rules
            rule = f"{label} must satisfy constraint: {element.rules_text}"
            out.append(_say(node, value, path, rule))
        for item, where in present:
            _inner(element, item, where, out)


def violations(operation: str, params: Mapping[str, Any]) -> list[str]:
    """Each violated constraint of ``operation``'s input, as AWS words it, in model order.

    Raises ``AwsError("SerializationException")`` for a value of the wrong JSON type and
    ``ValueError`` for an operation SageMaker does not have.
    """
    node = _operation(operation)
    out: list[str] = []
    if node is not None:
        _inner(node, dict(params), "", out)
    if operation == "CreateModel":
        out.extend(_environment_limits(params))
    return out


def _environment_limits(params: Mapping[str, Any]) -> list[str]:
    """CreateModel's documented byte limits on ``Environment`` (module docstring)."""
    maps: list[tuple[str, dict[str, str]]] = []
    primary = params.get("PrimaryContainer")
    if isinstance(primary, dict) and isinstance(primary.get("Environment"), dict):
        maps.append(("primaryContainer.environment", primary["Environment"]))
    for index, container in enumerate(params.get("Containers") or [], 1):
        if isinstance(container, dict) and isinstance(container.get("Environment"), dict):
            maps.append((f"containers.{index}.member.environment", container["Environment"]))
    out, total = [], 0
    for path, env in maps:
        # Over in characters is the model's violation already; this adds only the bytes. (A
        # key is ASCII by its pattern, so its characters are its bytes.)
        if any(len(v) <= _ENV_ENTRY_MAX_BYTES < _utf8_length(v) for v in env.values()):
            rule = f"Member must have length less than or equal to {_ENV_ENTRY_MAX_BYTES} bytes"
            out.append(
                f"Value '{_java(env)}' at '{path}' failed to satisfy constraint: "
                f"Map value must satisfy constraint: [{rule}]"
            )
        total += sum(_utf8_length(key) + _utf8_length(value) for key, value in env.items())
    if total > _ENV_TOTAL_MAX_BYTES:
        filled = [path for path, env in maps if env]
        where = filled[0] if len(filled) == 1 else "containers"
        out.append(
            f"Value at '{where}' failed to satisfy constraint: Member must have a combined "
            f"length of all keys and values less than or equal to {_ENV_TOTAL_MAX_BYTES} bytes"
        )
    return out


def _utf8_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def validate_input(operation: str, params: Mapping[str, Any]) -> None:
    """Raise ``AwsError("ValidationException")`` listing every violated constraint."""
    found = violations(operation, params)
    if found:
        noun = "error" if len(found) == 1 else "errors"
        message = f"{len(found)} validation {noun} detected: {'; '.join(found)}"
        raise AwsError("ValidationException", message)
