"""Multi-model checks: SageMaker's /models API as a multi-model endpoint drives it (reference §D.1).

Run by ``smlocal contract-test IMAGE --multi-model --models DIR_OR_S3_PREFIX`` against one
container started with ``SAGEMAKER_MULTI_MODEL=true`` and the models read-only below
``/opt/ml/models/<model_name>/model``. In order: the image label; load every model
(``POST /models``); a second load of one answers 409; ``GET /models`` lists them all when
paged one at a time through ``next_page_token``; ``GET /models/{name}`` describes a loaded one
and answers 404 for one never loaded; ``POST /models/{name}/invoke`` answers 2xx (404 when not
loaded); ``DELETE /models/{name}`` unloads (then get and invoke answer 404, a second unload
404) and a reload serves again. 507 (insufficient memory on load, after which SageMaker
unloads others) cannot be provoked portably: its check says what is expected, not judged.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from smlocal.contracts.context import PROBE_BODIES
from smlocal.contracts.model import CheckInfo, Outcome, Severity
from smlocal.contracts.wire import Address, Reply, call
from smlocal.emulator.multi_model_config import CAPABILITY_LABEL, container_model_url

__all__ = ["MULTI_MODEL_CHECKS", "MultiModelContext", "check_label"]

# More pages than models means the server's tokens go round in circles.
_PAGE_SLACK = 3
NEVER_LOADED = "smlocal-contract-never-loaded"


@dataclass
class MultiModelContext:
    address: Address
    labels: dict[str, str]
    models: dict[str, str]
    """TargetModel (the artifact's path under the prefix) -> the model_name it is loaded as."""
    working: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """model_name -> (content type, body) that answered 2xx, learned by the invoke check."""

    def call(self, method: str, path: str, body: object = None, **headers: str) -> Reply:
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return call(self.address, method, path, body=data, headers=headers, timeout_s=60.0)

    def load(self, name: str) -> Reply:
        return self.call("POST", "/models", {"model_name": name, "url": container_model_url(name)})

    def invoke(self, name: str, target: str, content_type: str, body: bytes) -> Reply:
        return self.call(
            "POST",
            f"/models/{name}/invoke",
            body,
            **{
                "Content-Type": content_type,
                "Accept": "*/*",
                "X-Amzn-SageMaker-Target-Model": target,
            },
        )

    @property
    def first(self) -> tuple[str, str]:
        target = sorted(self.models)[0]
        return target, self.models[target]


def _rule(text: str) -> str:
    return f"SageMaker's multi-model container contract: {text}"


LABEL = CheckInfo(
    "mme.label",
    "image carries the multi-models capability label",
    Severity.ERROR,
    _rule(f"the image must carry the label {CAPABILITY_LABEL}=true (CreateModel refuses it)."),
)


def check_label(labels: dict[str, str]) -> Outcome:
    value = labels.get(CAPABILITY_LABEL)
    if str(value).lower() == "true":
        return Outcome.passed(f"{CAPABILITY_LABEL}=true")
    return Outcome.failed(
        f"no {CAPABILITY_LABEL}=true label: SageMaker refuses the Model at CreateModel",
        [f"label value: {value!r}", f"add to the Dockerfile: LABEL {CAPABILITY_LABEL}=true"],
    )


LOAD = CheckInfo(
    "mme.load",
    "POST /models loads every model",
    Severity.ERROR,
    _rule('POST /models {"model_name", "url"} loads the model found at url and answers 200.'),
)


def check_load(context: MultiModelContext) -> Outcome:
    failures = []
    for target, name in sorted(context.models.items()):
        reply = context.load(name)
        if not reply.ok:
            failures.append(f"{target} (model_name {name}): {reply.describe()}")
    if failures:
        return Outcome.failed(f"{len(failures)} of {len(context.models)} load(s) failed", failures)
    return Outcome.passed(f"{len(context.models)} model(s) loaded", models=len(context.models))


LOAD_TWICE = CheckInfo(
    "mme.load-twice",
    "a second load of a loaded model answers 409",
    Severity.ERROR,
    _rule('"If model_name is already loaded, this API should return 409."'),
    needs=("mme.load",),
)


def check_load_twice(context: MultiModelContext) -> Outcome:
    target, name = context.first
    reply = context.load(name)
    if reply.status == 409:
        return Outcome.passed("409 Conflict")
    return Outcome.failed(
        f"a second POST /models for {target} answered {reply.status}, not 409",
        [reply.describe(), "SageMaker reads 409 as 'already loaded'; anything else is a failure"],
    )


LIST = CheckInfo(
    "mme.list",
    "GET /models lists every loaded model through next_page_token pages",
    Severity.ERROR,
    _rule(
        'GET /models answers {"models": [{"modelName", "modelUrl"}], "nextPageToken"}; a '
        "returned nextPageToken is sent back as next_page_token for the next page."
    ),
    needs=("mme.load",),
)


def check_list(context: MultiModelContext) -> Outcome:
    seen: list[str] = []
    token: str | None = None
    pages = 0
    evidence: list[str] = []
    while pages <= len(context.models) + _PAGE_SLACK:
        path = "/models?limit=1" + (f"&next_page_token={token}" if token is not None else "")
        reply = context.call("GET", path)
        pages += 1
        try:
            payload = json.loads(reply.body)
            models = payload["models"]
            names = [str(m["modelName"]) for m in models]
        except (ValueError, KeyError, TypeError):
            return Outcome.failed(f"GET {path} is not a model list", [reply.describe()])
        if not reply.ok:
            return Outcome.failed(f"GET {path} answered {reply.status}", [reply.describe()])
        evidence.append(f"GET {path}: {names} nextPageToken={payload.get('nextPageToken')!r}")
        seen += names
        token = payload.get("nextPageToken")
        if token is None:
            break
    else:
        return Outcome.failed(
            f"still a nextPageToken after {pages} pages of {len(context.models)} model(s)",
            evidence[-4:],
        )
    wanted = sorted(context.models.values())
    if sorted(set(seen)) != wanted or len(seen) != len(set(seen)):
        return Outcome.failed(
            f"the pages listed {sorted(seen)}, expected each of {wanted} once", evidence[-6:]
        )
    return Outcome.passed(f"{len(wanted)} model(s) in {pages} page(s)", pages=pages)


GET = CheckInfo(
    "mme.get",
    "GET /models/{name} describes a loaded model, 404 for one not loaded",
    Severity.ERROR,
    _rule('GET /models/{model_name} answers {"modelName", "modelUrl"}; 404 if not loaded.'),
    needs=("mme.load",),
)


def _described(reply: Reply, name: str) -> bool:
    try:
        payload = json.loads(reply.body)
    except ValueError:
        return False
    entries = payload if isinstance(payload, list) else [payload]  # MMS answers a list
    return any(isinstance(e, dict) and e.get("modelName") == name for e in entries)


def check_get(context: MultiModelContext) -> Outcome:
    _target, name = context.first
    loaded = context.call("GET", f"/models/{name}")
    missing = context.call("GET", f"/models/{NEVER_LOADED}")
    problems = []
    if not loaded.ok or not _described(loaded, name):
        problems.append(f"GET /models/{name} (loaded): {loaded.describe()}")
    if missing.status != 404:
        problems.append(f"GET /models/{NEVER_LOADED} (never loaded): {missing.describe()}")
    if problems:
        return Outcome.failed("GET /models/{name} broke the rule", problems)
    return Outcome.passed("described when loaded, 404 when not")


INVOKE = CheckInfo(
    "mme.invoke",
    "POST /models/{name}/invoke answers 2xx, 404 for a model not loaded",
    Severity.ERROR,
    _rule(
        "POST /models/{model_name}/invoke runs the model (Content-Type, Accept and "
        "X-Amzn-SageMaker-Target-Model as SageMaker sends them); 404 if not loaded."
    ),
    needs=("mme.load",),
)


def _learn(context: MultiModelContext, target: str, name: str) -> list[str]:
    tried = []
    for content_type, bodies in PROBE_BODIES.items():
        for body in bodies:
            reply = context.invoke(name, target, content_type, body)
            if reply.ok:
                context.working[name] = (content_type, body)
                return []
            tried.append(f"{content_type} {body[:40]!r}: {reply.describe()}")
    return tried


def check_invoke(context: MultiModelContext) -> Outcome:
    problems = []
    for target, name in sorted(context.models.items()):
        tried = _learn(context, target, name)
        if tried:
            problems.append(f"{target}: no probe body got a 2xx")
            problems += tried[:3]
    target, name = context.first
    if context.working:
        content_type, body = next(iter(context.working.values()))
        missing = context.invoke(NEVER_LOADED, target, content_type, body)
        if missing.status != 404:
            problems.append(f"invoke of a model never loaded: {missing.describe()}")
    if problems:
        return Outcome.failed("POST /models/{name}/invoke broke the rule", problems)
    return Outcome.passed(f"{len(context.working)} model(s) answered; 404 when not loaded")


UNLOAD = CheckInfo(
    "mme.unload",
    "DELETE /models/{name} unloads; a reload serves again",
    Severity.ERROR,
    _rule(
        "DELETE /models/{model_name} unloads the model (resources reclaimed when it returns); "
        "404 if not loaded. SageMaker loads it again when a request needs it."
    ),
    # Unloading is proven by get and invoke answering 404: it needs both judged sound first.
    needs=("mme.load", "mme.get", "mme.invoke"),
)


def check_unload(context: MultiModelContext) -> Outcome:
    target, name = context.first
    content_type, body = context.working.get(name, ("application/json", b"{}"))
    steps: list[tuple[str, Callable[[], Reply], Callable[[Reply], bool]]] = [
        ("unload", lambda: context.call("DELETE", f"/models/{name}"), lambda r: r.ok),
        ("get after unload", lambda: context.call("GET", f"/models/{name}"), _is_404),
        ("invoke after unload", lambda: context.invoke(name, target, content_type, body), _is_404),
        ("second unload", lambda: context.call("DELETE", f"/models/{name}"), _is_404),
        ("reload", lambda: context.load(name), lambda r: r.ok),
        ("invoke after reload", lambda: context.invoke(name, target, content_type, body), _ok),
    ]
    evidence = []
    for what, step, good in steps:
        reply = step()
        evidence.append(f"{what}: {reply.describe()}")
        if not good(reply):
            return Outcome.failed(f"{what} answered {reply.status}", evidence)
    return Outcome.passed("unloaded, 404 while gone, reloaded and served again")


def _is_404(reply: Reply) -> bool:
    return reply.status == 404


def _ok(reply: Reply) -> bool:
    return reply.ok


OUT_OF_MEMORY = CheckInfo(
    "mme.out-of-memory",
    "507 when a model cannot be loaded for lack of memory",
    Severity.INFO,
    _rule(
        '"Any time a model cannot be loaded due to lack of memory or to any other resource, '
        'this API should return a 507", after which SageMaker unloads unused models.'
    ),
    needs=("mme.load",),
)


def check_out_of_memory(_context: MultiModelContext) -> Outcome:
    return Outcome.not_applicable(
        "not provoked (it needs the container's own memory limit): a load the container "
        "cannot hold must answer 507, and smlocal then unloads the least recently used "
        "model and loads again; any other status fails the request with a ModelError"
    )


MULTI_MODEL_CHECKS: tuple[tuple[CheckInfo, Callable[[MultiModelContext], Outcome]], ...] = (
    (LOAD, check_load),
    (LOAD_TWICE, check_load_twice),
    (LIST, check_list),
    (GET, check_get),
    (INVOKE, check_invoke),
    (UNLOAD, check_unload),
    (OUT_OF_MEMORY, check_out_of_memory),
)
