"""/invocations checks: examples, content types, Accept, headers, bad and large bodies, load.

The firm rule everywhere is the same: a client's input may earn a 4xx, never a 5xx (a 5xx
becomes ModelError for the caller and counts as the model failing), and the container stays
healthy. Advice (415 for an unsupported type, 406 for an unsupported Accept) is given in the
summary, not enforced. Checks that need a request known to work say "not applicable" when
there is none, rather than guessing.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from typing import Any

import jsonschema

from smlocal.contracts.checks.base import LiveCheck
from smlocal.contracts.context import PROBE_BODIES, LiveContext, WorkingRequest
from smlocal.contracts.fuzz import generated_bodies, malformed_bodies
from smlocal.contracts.model import CheckInfo, Outcome, Severity
from smlocal.contracts.specfile import Example
from smlocal.contracts.wire import Reply

__all__ = ["INVOCATION_CHECKS", "MAX_PAYLOAD_BYTES"]

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
INVOCATION_TIMEOUT_S = 60.0
MAX_LISTED = 6
UNDECLARED_TYPE = "application/x-smlocal-undeclared"
UNSUPPORTED_ACCEPT = "application/x-smlocal-unsupported"
UNKNOWN_HEADERS = {"X-Smlocal-Contract-Probe": "1", "X-Request-Id": "smlocal-contract-test"}
FUZZ_BODIES = 30
_NO_WORKING = (
    "no request is known to succeed (no spec example with a 2xx status, and no JSON/CSV probe "
    "got a 2xx); add an example to the spec"
)


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


# ---- examples ----------------------------------------------------------------------------

EXAMPLES = CheckInfo(
    "invocations.examples",
    "spec examples answer as expected",
    Severity.ERROR,
    "Each example returns its expected status and output (or matches its JSON Schema), within "
    "the latency budget (invocations.response-limits judges the 60 s and 6 MiB limits).",
)


def _close(a: Any, b: Any) -> bool:
    """JSON equality, with floats compared to 1e-6 relative (models round differently)."""
    if isinstance(a, float) or isinstance(b, float):
        return (
            isinstance(a, int | float)
            and isinstance(b, int | float)
            and math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
        )
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    return bool(a == b)


def _judge_example(example: Example, reply: Reply, budget_s: float) -> list[str]:
    expect = example.expect
    problems: list[str] = []
    if reply.status != expect.status:
        return [f"expected status {expect.status}, got {reply.describe()}"]
    if reply.elapsed_s > budget_s:
        problems.append(f"took {reply.elapsed_s:.2f} s; the latency budget is {budget_s:g} s")
    if expect.content_type and reply.content_type != _media(expect.content_type):
        problems.append(
            f"expected Content-Type {expect.content_type}, got {reply.content_type or '(none)'}"
        )
    if expect.body is not None and reply.body.decode(errors="replace") != expect.body:
        problems.append(f"expected body {expect.body[:120]!r}, got {reply.describe()}")
    if expect.json_ is not None or expect.json_schema is not None:
        try:
            answer = json.loads(reply.body)
        except ValueError:
            return [*problems, f"answer is not JSON: {reply.describe()}"]
        if expect.json_ is not None and not _close(answer, expect.json_):
            problems.append(
                f"expected JSON {json.dumps(expect.json_)[:200]}, got {json.dumps(answer)[:200]}"
            )
        if expect.json_schema is not None:
            validator = jsonschema.Draft202012Validator(expect.json_schema)
            problems.extend(
                f"JSON Schema: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                for e in list(validator.iter_errors(answer))[:3]
            )
    return problems


def check_examples(context: LiveContext) -> Outcome:
    spec = context.spec
    if spec is None or not spec.examples:
        return Outcome.not_applicable(
            "no spec examples to check (pass --spec with `examples:` to compare answers)"
        )
    budget_s = min(spec.latency_budget_ms / 1000, INVOCATION_TIMEOUT_S)
    evidence: list[str] = []
    latencies: dict[str, float] = {}
    for example in spec.examples:
        reply = context.invoke(
            example.payload(), example.content_type, accept=example.accept or "*/*"
        )
        latencies[example.name] = round(reply.elapsed_s * 1000, 1)
        evidence.extend(f"{example.name}: {p}" for p in _judge_example(example, reply, budget_s))
    if evidence:
        return Outcome.failed(
            f"{len({e.split(':', 1)[0] for e in evidence})} of {len(spec.examples)} examples "
            "did not answer as expected",
            evidence,
            latency_ms=latencies,
        )
    return Outcome.passed(
        f"{len(spec.examples)} examples answered as expected", latency_ms=latencies
    )


# ---- content types -----------------------------------------------------------------------

CONTENT_TYPES = CheckInfo(
    "invocations.content-types",
    "every declared content type works",
    Severity.ERROR,
    "Every request content type the model declares must be accepted (2xx for a valid body).",
)


def check_content_types(context: LiveContext) -> Outcome:
    spec = context.spec
    if spec is None or not spec.declared_content_types:
        learned = {t: p.replies[-1].status for t, p in context.probes.items() if p.understood}
        if not learned:
            return Outcome.not_applicable(
                "no spec, and neither JSON nor CSV probes were understood; declare the "
                "content types (and an example) in a spec",
                probes={t: [r.status for r in p.replies] for t, p in context.probes.items()},
            )
        listed = ", ".join(f"{t} ({s})" for t, s in learned.items())
        return Outcome.passed(f"no spec; probing found: {listed}", learned=learned)
    evidence: list[str] = []
    verdicts: dict[str, str] = {}
    for content_type in spec.declared_content_types:
        example = next((w for w in context.working if _media(w.content_type) == content_type), None)
        if example is not None:
            reply = context.invoke(example.body, example.content_type, accept=example.accept)
            verdicts[content_type] = str(reply.status)
            if not reply.ok:
                evidence.append(f"{content_type} ({example.name}): {reply.describe()}")
            continue
        probe = context.probes.get(content_type)
        if probe is None:
            verdicts[content_type] = "no example"
            continue
        last = probe.replies[-1]
        verdicts[content_type] = str(last.status)
        if any(r.status == 415 for r in probe.replies) or any(
            r.server_error for r in probe.replies
        ):
            evidence.extend(f"{content_type} (probe body): {r.describe()}" for r in probe.replies)
    if evidence:
        return Outcome.failed(
            "declared content types were refused or failed", evidence, verdicts=verdicts
        )
    untested = [t for t, v in verdicts.items() if v == "no example"]
    note = f"; {', '.join(untested)} untested (add an example)" if untested else ""
    return Outcome.passed(f"declared types work: {verdicts}{note}", verdicts=verdicts)


# ---- undeclared content type -------------------------------------------------------------

UNSUPPORTED_TYPE = CheckInfo(
    "invocations.unsupported-content-type",
    "an undeclared content type gets 4xx, never 5xx",
    Severity.ERROR,
    "A request the model cannot handle is the client's error: 4xx (415 advised), never 5xx.",
)


def check_unsupported_type(context: LiveContext) -> Outcome:
    reply = context.invoke(b"smlocal contract probe", UNDECLARED_TYPE)
    measured = {"status": reply.status}
    if reply.server_error:
        return Outcome.failed(
            f"Content-Type {UNDECLARED_TYPE} got a server error",
            [reply.describe(), "answer 415 Unsupported Media Type instead"],
            **measured,
        )
    if reply.ok:
        return Outcome.passed(
            f"{reply.status}: accepted (the container takes any type)", **measured
        )
    advice = "" if reply.status == 415 else " (415 is the advised status)"
    return Outcome.passed(f"{reply.status}{advice}", **measured)


# ---- Accept ------------------------------------------------------------------------------

ACCEPT = CheckInfo(
    "invocations.accept",
    "Accept handling (missing, */*, declared, unsupported)",
    Severity.ERROR,
    "Callers may omit Accept or send */* (the default answer type applies); an Accept the "
    "model cannot produce gets 4xx (406 advised), never 5xx.",
)


def check_accept(context: LiveContext) -> Outcome:
    if not context.working:
        return Outcome.not_applicable(_NO_WORKING)
    request = context.working[0]
    cases: list[tuple[str, str | None, bool]] = [("missing", None, True), ("*/*", "*/*", True)]
    if context.spec is not None:
        cases.extend((accept, accept, True) for accept in context.spec.accept_types)
    cases.append((UNSUPPORTED_ACCEPT, UNSUPPORTED_ACCEPT, False))
    evidence: list[str] = []
    statuses: dict[str, int | None] = {}
    for label, accept, must_succeed in cases:
        reply = context.invoke(request.body, request.content_type, accept=accept)
        statuses[label] = reply.status
        if reply.server_error or (must_succeed and not reply.ok):
            evidence.append(f"Accept {label} ({request.name}): {reply.describe()}")
    if evidence:
        return Outcome.failed("Accept was not handled", evidence, statuses=statuses)
    return Outcome.passed(f"statuses by Accept: {statuses}", statuses=statuses)


# ---- unknown headers ---------------------------------------------------------------------

UNKNOWN = CheckInfo(
    "invocations.unknown-headers",
    "unknown extra headers are ignored",
    Severity.ERROR,
    "Clients, proxies and SageMaker add headers the model does not know; they must not change "
    "the answer.",
)


def check_unknown_headers(context: LiveContext) -> Outcome:
    if not context.working:
        return Outcome.not_applicable(_NO_WORKING)
    request = context.working[0]
    reply = context.invoke(
        request.body, request.content_type, accept=request.accept, extra=UNKNOWN_HEADERS
    )
    if not reply.ok:
        return Outcome.failed(
            "a request that works failed once unknown headers were added",
            [f"headers {UNKNOWN_HEADERS} on {request.name}: {reply.describe()}"],
            status=reply.status,
        )
    return Outcome.passed(f"{reply.status} with {sorted(UNKNOWN_HEADERS)}", status=reply.status)


# ---- malformed and generated bodies ------------------------------------------------------

MALFORMED = CheckInfo(
    "invocations.malformed",
    "malformed and generated bodies get 4xx, never 5xx",
    Severity.ERROR,
    "Malformed input is the client's error: 4xx, never 5xx, and the container stays healthy.",
)


def check_malformed(context: LiveContext) -> Outcome:
    types = context.accepted_types()
    if not types:
        return Outcome.not_applicable("no accepted content type is known (no spec, no probe)")
    evidence: list[str] = []
    counts: dict[str, dict[str, int]] = {}
    for content_type in types:
        bodies = [*malformed_bodies(content_type), *generated_bodies(content_type, FUZZ_BODIES)]
        tally: Counter[str] = Counter()
        for body in bodies:
            reply = context.invoke(body, content_type)
            tally[str(reply.status)] += 1
            if reply.server_error and len(evidence) < 6:
                evidence.append(f"{content_type} body {body[:60]!r}: {reply.describe()}")
        counts[content_type] = dict(tally)
    problem = context.health_problem()
    if problem:
        evidence.append(f"after the bad bodies: {problem}")
    if evidence:
        return Outcome.failed("bad input caused server errors", evidence, statuses=counts)
    sent = sum(sum(c.values()) for c in counts.values())
    return Outcome.passed(f"{sent} bad bodies, no 5xx: {counts}", statuses=counts)


# ---- 6 MiB body --------------------------------------------------------------------------

LARGE_BODY = CheckInfo(
    "invocations.large-body",
    "a 6 MiB body is handled",
    Severity.ERROR,
    "Real-time requests may be up to 6 MiB; one that large gets an answer or a clean 4xx, "
    "within 60 s, and the container stays healthy.",
)


def _large_body(content_type: str) -> bytes:
    if content_type == "application/json":
        head, tail = b'{"smlocal_padding": "', b'"}'
        return head + b"x" * (MAX_PAYLOAD_BYTES - len(head) - len(tail)) + tail
    line = b"smlocal-padding\n"
    return line * (MAX_PAYLOAD_BYTES // len(line)) + b"x" * (MAX_PAYLOAD_BYTES % len(line))


def check_large_body(context: LiveContext) -> Outcome:
    types = context.accepted_types() or tuple(PROBE_BODIES)
    evidence: list[str] = []
    statuses: dict[str, int | None] = {}
    for content_type in types:
        reply = context.invoke(
            _large_body(content_type), content_type, timeout_s=INVOCATION_TIMEOUT_S
        )
        statuses[content_type] = reply.status
        if reply.server_error:
            evidence.append(f"{content_type}, {MAX_PAYLOAD_BYTES} bytes: {reply.describe()}")
    problem = context.health_problem()
    if problem:
        evidence.append(f"after the 6 MiB bodies: {problem}")
    if evidence:
        return Outcome.failed("a 6 MiB body was not handled", evidence, statuses=statuses)
    return Outcome.passed(f"6 MiB bodies answered: {statuses}", statuses=statuses)


# ---- concurrency -------------------------------------------------------------------------

CONCURRENCY = CheckInfo(
    "invocations.concurrency",
    "concurrent requests all succeed",
    Severity.ERROR,
    "An instance serves concurrent requests (SageMaker does not serialise them); each must "
    "succeed, not be refused while the container is busy.",
)


def check_concurrency(context: LiveContext) -> Outcome:
    if not context.working:
        return Outcome.not_applicable(_NO_WORKING)
    count = context.spec.concurrency if context.spec is not None else 8
    barrier = threading.Barrier(count)
    replies: list[tuple[WorkingRequest, Reply]] = []

    def one(index: int) -> None:
        request = context.working[index % len(context.working)]
        barrier.wait(timeout=10)
        reply = context.invoke(request.body, request.content_type, accept=request.accept)
        replies.append((request, reply))

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=INVOCATION_TIMEOUT_S + 10)
    slowest = max((r.elapsed_s for _, r in replies), default=0.0)
    statuses = Counter(str(r.status) for _, r in replies)
    failed = [f"{w.name}: {r.describe()}" for w, r in replies if not r.ok]
    measured = {"concurrency": count, "statuses": dict(statuses), "max_ms": round(slowest * 1000)}
    if failed or len(replies) < count:
        return Outcome.failed(
            f"{len(failed) + count - len(replies)} of {count} concurrent requests failed",
            failed[:6],
            **measured,
        )
    return Outcome.passed(f"{count} concurrent requests, slowest {slowest:.2f} s", **measured)


# ---- response limits ---------------------------------------------------------------------

RESPONSE_LIMITS = CheckInfo(
    "invocations.response-limits",
    "every answer within 60 s and at most 6 MiB",
    Severity.ERROR,
    "SageMaker stops waiting for /invocations after 60 s, and a real-time response over 6 MiB "
    "never reaches the caller (the invocation fails). Judged over every answer of the suite.",
)


def check_response_limits(context: LiveContext) -> Outcome:
    answers = list(context.answers)
    if not answers:
        return Outcome.not_applicable("no /invocations answers to judge")
    too_slow = [a for a in answers if a.elapsed_s >= INVOCATION_TIMEOUT_S]
    too_large = [a for a in answers if a.size > MAX_PAYLOAD_BYTES]
    measured = {
        "answers": len(answers),
        "max_bytes": max(a.size for a in answers),
        "max_ms": round(max(a.elapsed_s for a in answers) * 1000),
        "over_60_s": len(too_slow),
        "over_6_mib": len(too_large),
    }
    if not too_slow and not too_large:
        return Outcome.passed(
            f"{len(answers)} answers, largest {measured['max_bytes']} bytes, "
            f"slowest {measured['max_ms']} ms",
            **measured,
        )
    # A few of each kind, so dozens of oversize answers cannot hide a timeout.
    half = MAX_LISTED // 2
    evidence = [
        f"{a.request}: {a.error or 'answered'} after {a.elapsed_s:.1f} s (limit 60 s)"
        for a in too_slow[:half]
    ]
    evidence += [
        f"{a.request}: answer of {a.size} bytes (limit {MAX_PAYLOAD_BYTES})"
        for a in too_large[:half]
    ]
    more = len(too_slow) + len(too_large) - len(evidence)
    if more:
        evidence.append(f"... and {more} more")
    broken = len({id(a) for a in (*too_slow, *too_large)})
    return Outcome.failed(
        f"{broken} of {len(answers)} answers broke the 60 s / 6 MiB limits", evidence, **measured
    )


INVOCATION_CHECKS = (
    LiveCheck(CONTENT_TYPES, check_content_types),
    LiveCheck(EXAMPLES, check_examples),
    LiveCheck(UNSUPPORTED_TYPE, check_unsupported_type),
    LiveCheck(ACCEPT, check_accept),
    LiveCheck(UNKNOWN, check_unknown_headers),
    LiveCheck(CONCURRENCY, check_concurrency),
    LiveCheck(MALFORMED, check_malformed),
    LiveCheck(LARGE_BODY, check_large_body),
    # Last: it judges the answers every check before it got.
    LiveCheck(RESPONSE_LIMITS, check_response_limits),
)
