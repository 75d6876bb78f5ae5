"""promote and cleanup against a real moto server (AWS APIs) and a real local registry (push).

Faults are injected at botocore's single call path (``BaseClient._make_api_call``) so each
step fails exactly as it would when AWS answers with an error; the tests then check that the
manifest lists precisely what exists and that cleanup leaves the account as it found it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError

from smlocal.emulator.errors import ConfigError
from smlocal.emulator.spec import build_spec
from smlocal.promote.aws import Clients
from smlocal.promote.cleanup import CleanupOptions, run_cleanup
from smlocal.promote.deploy import execute, prepare
from smlocal.promote.errors import GateRefusedError, StepFailedError
from smlocal.promote.manifest import Manifest
from smlocal.promote.request import PromoteRequest, ServerlessSettings
from tests.aws_fakes import FAKE_CREDENTIALS, local_registry, moto_server, snapshot
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL

pytestmark = pytest.mark.docker

Calls = list[str]


@pytest.fixture(scope="module")
def aws_url() -> Iterator[str]:
    """A moto server for this module; boto3 finds it through AWS_ENDPOINT_URL, as users would."""
    with pytest.MonkeyPatch.context() as mp, moto_server() as url:
        for key, value in FAKE_CREDENTIALS.items():
            mp.setenv(key, value)
        mp.setenv("AWS_ENDPOINT_URL", url)
        mp.setenv("AWS_MAX_ATTEMPTS", "1")
        yield url


@pytest.fixture(scope="module")
def registry() -> str:
    return local_registry()


@pytest.fixture()
def clients(aws_url: str) -> Clients:
    return Clients("us-east-1")


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS operation made, in order (botocore's one call path)."""
    made: Calls = []
    original: Callable[..., Any] = BaseClient._make_api_call  # type: ignore[attr-defined]

    def counting(self: BaseClient, name: str, params: dict[str, Any]) -> Any:
        made.append(name)
        return original(self, name, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", counting)
    return made


def _inject(
    monkeypatch: pytest.MonkeyPatch, operation: str, answer: Callable[[Any], Any] | None = None
) -> None:
    """Make ``operation`` fail with an AWS-style error (or rewrite its answer)."""
    original: Callable[..., Any] = BaseClient._make_api_call  # type: ignore[attr-defined]

    def patched(self: BaseClient, name: str, params: dict[str, Any]) -> Any:
        if name != operation:
            return original(self, name, params)
        if answer is not None:
            return answer(original(self, name, params))
        raise ClientError(
            {"Error": {"Code": "InjectedFault", "Message": f"injected into {name}"}}, name
        )

    monkeypatch.setattr(BaseClient, "_make_api_call", patched)


def _request(tmp_path: Path, name: str, registry: str | None, **changes: Any) -> PromoteRequest:
    spec_fields = changes.pop("spec_fields", {})
    # A variant's own model wins over the request's (--model), so the two stay the same here.
    model = changes.get("model", str(SKLEARN_MODEL))
    spec = build_spec(
        name=name,
        variants=spec_fields.pop("variants", [{"image": SKLEARN_IMAGE, "model": model}]),
    )
    values: dict[str, Any] = {
        "spec": spec,
        "model": str(SKLEARN_MODEL),
        "region": "us-east-1",
        "deployment_id": f"{name}-1",
        "manifest_path": tmp_path / "deployments" / f"{name}-1.json",
        "registry_url": registry,
        "alarm_email": "oncall@example.com",
        "poll_interval_s": 0.05,
        "wait_timeout_s": 30,
    }
    values.update(changes)
    return PromoteRequest(**values)


def _pass_gate(request: PromoteRequest) -> None:
    """A contract-test pass, written through the ledger's own public call."""
    import docker

    from smlocal.contracts.ledger import record_pass
    from smlocal.contracts.model import SuiteReport
    from smlocal.contracts.specfile import ContractSpec, spec_digest
    from smlocal.emulator.artifacts import stage_model
    from smlocal.emulator.state import StateDir

    report = SuiteReport(
        image=SKLEARN_IMAGE,
        image_id=docker.from_env().images.get(SKLEARN_IMAGE).id,
        model=request.model,
        model_digest=stage_model(request.model, StateDir().cache).digest,
        spec_path=None,
        spec_digest=spec_digest(ContractSpec()),
        instance_type=request.spec.variants[0].instance_type,
    )
    record_pass(report)


def _diff(after: dict[str, set[str]], before: dict[str, set[str]]) -> dict[str, set[str]]:
    return {kind: names - before[kind] for kind, names in after.items() if names - before[kind]}


def _live(manifest: Manifest) -> dict[str, set[str]]:
    """What the manifest says smlocal created and has not deleted, keyed like ``snapshot``."""
    found: dict[str, set[str]] = {}
    for r in manifest.resources:
        if r.created and r.deleted_at is None and r.kind != "ecr-image":
            found.setdefault(r.kind, set()).add(r.arn if r.kind == "sns-topic" and r.arn else r.id)
    return found


# -- fault injection ------------------------------------------------------------------------

FAULTS = [
    ("CreateRepository", "ecr repository"),
    ("GetAuthorizationToken", "image push"),
    ("CreateBucket", "s3 bucket"),
    ("PutBucketVersioning", "s3 bucket"),
    ("PutObject", "model upload"),
    ("CreateRole", "iam role"),
    ("PutRolePolicy", "iam role"),
    ("CreateModel", "sagemaker model"),
    ("CreateEndpointConfig", "endpoint config"),
    ("CreateEndpoint", "endpoint"),
    ("RegisterScalableTarget", "autoscaling"),
    ("PutScalingPolicy", "autoscaling"),
    ("CreateTopic", "alarms"),
    ("PutMetricAlarm", "alarms"),
]


@pytest.mark.parametrize(("operation", "step"), FAULTS)
def test_a_failing_step_stops_and_cleanup_removes_what_it_left(
    operation: str,
    step: str,
    tmp_path: Path,
    smlocal_home: Path,
    registry: str,
    clients: Clients,
) -> None:
    name = f"fault-{operation.lower()}"
    request = _request(tmp_path, name, registry)
    _pass_gate(request)
    before = snapshot(clients)
    prepared = prepare(request)

    with pytest.MonkeyPatch.context() as mp, pytest.raises(StepFailedError) as failure:
        _inject(mp, operation)
        execute(prepared)

    assert failure.value.step == step
    assert f"InjectedFault: injected into {operation}" in str(failure.value)
    assert "smlocal cleanup --manifest" in str(failure.value)
    manifest = Manifest.load(request.manifest_path)
    assert manifest.status == "failed"
    assert manifest.failure is not None and manifest.failure["step"] == step
    # The manifest lists exactly what now exists that did not before.
    assert _live(manifest) == _diff(snapshot(clients), before)

    run_cleanup(Manifest.load(request.manifest_path), CleanupOptions(poll_interval_s=0.05))

    assert snapshot(clients) == before


def test_an_endpoint_that_fails_reports_aws_failure_reason(
    tmp_path: Path,
    smlocal_home: Path,
    registry: str,
    clients: Clients,
) -> None:
    request = _request(tmp_path, "fails-to-start", registry)
    _pass_gate(request)
    before = snapshot(clients)
    prepared = prepare(request)

    def failed(answer: dict[str, Any]) -> dict[str, Any]:
        return {**answer, "EndpointStatus": "Failed", "FailureReason": "ping did not answer 200"}

    with (
        pytest.MonkeyPatch.context() as mp,
        pytest.raises(StepFailedError, match="ping did not answer 200") as failure,
    ):
        _inject(mp, "DescribeEndpoint", failed)
        execute(prepared)
    assert failure.value.step == "wait for InService"
    run_cleanup(Manifest.load(request.manifest_path), CleanupOptions(poll_interval_s=0.05))
    assert snapshot(clients) == before


def test_a_name_taken_by_someone_else_is_a_conflict_not_reused(
    tmp_path: Path, smlocal_home: Path, registry: str, clients: Clients
) -> None:
    request = _request(tmp_path, "conflict", registry)
    _pass_gate(request)
    prepared = prepare(request)
    taken = prepared.deployment.model_name
    clients.sagemaker.create_model(
        ModelName=taken,
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/other:1"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/other",
    )
    before = snapshot(clients)

    with pytest.raises(StepFailedError, match=f"sagemaker-model {taken} already exists"):
        execute(prepared)

    manifest = Manifest.load(request.manifest_path)
    assert manifest.find("sagemaker-model", taken) is None
    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))
    after = snapshot(clients)
    assert after == before
    assert taken in after["sagemaker-model"]
    clients.sagemaker.delete_model(ModelName=taken)


def test_a_failed_push_is_a_step_failure(
    tmp_path: Path, smlocal_home: Path, clients: Clients
) -> None:
    # Nothing listens on port 9 (discard): the docker daemon cannot push there.
    request = _request(tmp_path, "no-registry", "127.0.0.1:9")
    _pass_gate(request)
    before = snapshot(clients)
    with pytest.raises(StepFailedError, match=r"docker push to 127\.0\.0\.1:9 failed") as failure:
        execute(prepare(request))
    assert failure.value.step == "image push"
    run_cleanup(Manifest.load(request.manifest_path), CleanupOptions())
    assert snapshot(clients) == before


def test_an_existing_endpoint_is_updated_and_never_deleted(
    tmp_path: Path, smlocal_home: Path, registry: str, clients: Clients
) -> None:
    sm = clients.sagemaker
    sm.create_model(
        ModelName="theirs",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/theirs:1"},
        ExecutionRoleArn="arn:aws:iam::123456789012:role/theirs",
    )
    sm.create_endpoint_config(
        EndpointConfigName="theirs",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "theirs",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="existing-endpoint", EndpointConfigName="theirs")
    request = _request(tmp_path, "existing-endpoint", registry)
    _pass_gate(request)
    before = snapshot(clients)

    # moto 5.2 has no UpdateEndpoint (it answers 500 "not implemented"): promote must have
    # recorded the endpoint as pre-existing and then called UpdateEndpoint.
    with pytest.raises(StepFailedError, match="UpdateEndpoint") as failure:
        execute(prepare(request))

    assert failure.value.step == "endpoint"
    manifest = Manifest.load(request.manifest_path)
    endpoint = manifest.find("sagemaker-endpoint", "existing-endpoint")
    assert endpoint is not None and not endpoint.created
    assert endpoint.details["previous_config"] == "theirs"
    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))
    assert snapshot(clients) == before
    assert sm.describe_endpoint(EndpointName="existing-endpoint")["EndpointConfigName"] == "theirs"


def test_rerunning_a_failed_deployment_resumes_it(
    tmp_path: Path,
    smlocal_home: Path,
    registry: str,
    clients: Clients,
) -> None:
    request = _request(tmp_path, "resume", registry)
    _pass_gate(request)
    before = snapshot(clients)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(StepFailedError):
        _inject(mp, "PutScalingPolicy")
        execute(prepare(request))

    manifest = execute(prepare(request))

    assert manifest.status == "complete"
    kinds = [r.kind for r in manifest.resources]
    assert kinds.count("sagemaker-model") == 1 and kinds.count("sagemaker-endpoint") == 1
    assert all(r.created for r in manifest.resources)
    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))
    assert snapshot(clients) == before


# -- refusals and dry runs: no AWS call at all ------------------------------------------------


def test_no_contract_record_is_refused_before_any_aws_call(
    tmp_path: Path, smlocal_home: Path, registry: str, calls: Calls
) -> None:
    request = _request(tmp_path, "ungated", registry)
    with pytest.raises(
        GateRefusedError, match=r"smlocal contract-test smlocal/sklearn-iris:latest"
    ):
        prepare(request)
    assert calls == []
    assert not request.manifest_path.exists()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"serverless": ServerlessSettings(1500, 10)}, "serverless memory 1500 MB is not allowed"),
        ({"serverless": ServerlessSettings(2048, 201)}, "MaxConcurrency 201 is outside 1-200"),
        (
            {
                "serverless": ServerlessSettings(2048, 5),
                "spec_fields": {
                    "variants": [{"name": f"v{i}", "image": SKLEARN_IMAGE} for i in range(6)]
                },
            },
            "at most 5 variants",
        ),
    ],
)
def test_invalid_requests_are_refused_before_any_aws_call(
    changes: dict[str, Any], message: str, tmp_path: Path, smlocal_home: Path, calls: Calls
) -> None:
    request = _request(tmp_path, "invalid", None, **changes)
    with pytest.raises(ConfigError, match=message):
        prepare(request)
    assert calls == []


def test_skip_gate_is_written_to_the_manifest(
    tmp_path: Path, smlocal_home: Path, registry: str, clients: Clients
) -> None:
    request = _request(tmp_path, "skipped-gate", registry, skip_gate=True)
    manifest = execute(prepare(request))
    assert Manifest.load(request.manifest_path).skip_gate is True
    assert manifest.gate["skipped"] is True
    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))


def test_a_large_model_directory_goes_up_packed_in_checksummed_parts(
    tmp_path: Path, smlocal_home: Path, registry: str, clients: Clients
) -> None:
    import os

    model_dir = tmp_path / "model"
    model_dir.mkdir()
    # Random bytes do not compress: the tarball stays above the 8 MiB multipart threshold.
    (model_dir / "weights.bin").write_bytes(os.urandom(9 * 1024 * 1024))
    request = _request(tmp_path, "big-model", registry, model=str(model_dir), skip_gate=True)
    manifest = execute(prepare(request))

    [upload] = manifest.of_kind("s3-object")
    where = {"Bucket": upload.details["bucket"], "Key": upload.details["key"]}
    # moto 5.2 leaves ObjectParts out of GetObjectAttributes; the multipart ETag, the first
    # part's PartsCount and the COMPOSITE (per-part) checksum show the same thing.
    attributes = clients.s3.get_object_attributes(**where, ObjectAttributes=["Checksum", "ETag"])
    assert attributes["ETag"].endswith("-2")
    assert attributes["Checksum"]["ChecksumType"] == "COMPOSITE"
    assert attributes["Checksum"]["ChecksumSHA256"] == upload.details["checksum_sha256"]
    assert clients.s3.head_object(**where, PartNumber=1)["PartsCount"] == 2
    head = clients.s3.head_object(**where)
    assert head["Metadata"]["sha256"] == upload.details["sha256"]
    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))


# -- several variants, each with its own image and model ---------------------------------------

VARIANT_IMAGES = ("smlocal-multi/iris-a:latest", "smlocal-multi/iris-b:latest")


@pytest.fixture(scope="module")
def variant_images() -> Iterator[tuple[str, str]]:
    """Two local images made from the sklearn one, each with its own digest and repository.

    A label makes each a distinct image (no layer is copied), so no other test's cleanup of
    the sklearn image's digest in the shared local registry can touch what this one pushed.
    """
    import io

    import docker

    images = docker.from_env().images
    for tag in VARIANT_IMAGES:
        dockerfile = f"FROM {SKLEARN_IMAGE}\nLABEL smlocal.test.variant={tag}\n"
        images.build(fileobj=io.BytesIO(dockerfile.encode()), tag=tag, rm=True)
    try:
        yield VARIANT_IMAGES
    finally:
        for tag in VARIANT_IMAGES:
            images.remove(tag, noprune=False)


def _second_model(tmp_path: Path) -> Path:
    """The sklearn model unpacked into a directory plus one file: another digest, another upload."""
    import tarfile

    folder = tmp_path / "model-b"
    folder.mkdir()
    with tarfile.open(SKLEARN_MODEL) as archive:
        archive.extractall(folder, filter="data")
    (folder / "VARIANT").write_text("b\n")
    return folder


def _two_variant_request(
    tmp_path: Path, name: str, registry: str, images: tuple[str, str]
) -> PromoteRequest:
    """Built the way a project does it: smlocal.toml → load_config(...).endpoint(name)."""
    from smlocal.emulator.config import load_config

    model_b = _second_model(tmp_path)
    config = tmp_path / "smlocal.toml"
    config.write_text(
        f"[endpoints.{name}]\n"
        f"[[endpoints.{name}.variants]]\n"
        f'name = "A"\nimage = "{images[0]}"\nmodel = "{SKLEARN_MODEL}"\n'
        'weight = 3\ninstance_type = "ml.m5.large"\ninstance_count = 2\n'
        f"[[endpoints.{name}.variants]]\n"
        f'name = "B"\nimage = "{images[1]}"\nmodel = "{model_b.name}"\n'
        'weight = 1\ninstance_type = "ml.c5.xlarge"\n'
    )
    spec = load_config(config).endpoint(name)
    return _request(tmp_path, name, registry, spec=spec, model=str(SKLEARN_MODEL))


def _pass_gate_for(image: str, model: str) -> None:
    import docker

    from smlocal.contracts.ledger import record_pass
    from smlocal.contracts.model import SuiteReport
    from smlocal.contracts.specfile import ContractSpec, spec_digest
    from smlocal.emulator.artifacts import stage_model
    from smlocal.emulator.state import StateDir

    record_pass(
        SuiteReport(
            image=image,
            image_id=docker.from_env().images.get(image).id,
            model=model,
            model_digest=stage_model(model, StateDir().cache).digest,
            spec_path=None,
            spec_digest=spec_digest(ContractSpec()),
            instance_type="ml.m5.large",
        )
    )


def _registry_tags(registry: str, repository: str) -> list[str]:
    import json
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list") as answer:
            return list(json.load(answer).get("tags") or [])
    except urllib.error.HTTPError:
        return []


def test_each_variant_ships_its_own_image_and_model(
    tmp_path: Path,
    smlocal_home: Path,
    registry: str,
    clients: Clients,
    variant_images: tuple[str, str],
) -> None:
    request = _two_variant_request(tmp_path, "two-variants", registry, variant_images)
    a, b = request.spec.variants
    assert a.model is not None and b.model is not None
    _pass_gate_for(a.image, a.model)
    _pass_gate_for(b.image, b.model)
    before = snapshot(clients)

    manifest = execute(prepare(request))

    assert manifest.status == "complete"
    assert [p["variants"] for p in manifest.gate["pairs"]] == [["A"], ["B"]]
    sm = clients.sagemaker
    config = sm.describe_endpoint_config(EndpointConfigName=_config_name(manifest))
    variants = {v["VariantName"]: v for v in config["ProductionVariants"]}
    assert set(variants) == {"A", "B"}
    assert variants["A"]["InitialVariantWeight"] == 3.0
    assert variants["B"]["InitialVariantWeight"] == 1.0
    assert (variants["A"]["InstanceType"], variants["A"]["InitialInstanceCount"]) == (
        "ml.m5.large",
        2,
    )
    assert (variants["B"]["InstanceType"], variants["B"]["InitialInstanceCount"]) == (
        "ml.c5.xlarge",
        1,
    )
    models = {
        name: sm.describe_model(ModelName=variants[name]["ModelName"])["PrimaryContainer"]
        for name in ("A", "B")
    }
    assert len({v["ModelName"] for v in variants.values()}) == 2
    assert "/smlocal-multi/iris-a@sha256:" in models["A"]["Image"]
    assert "/smlocal-multi/iris-b@sha256:" in models["B"]["Image"]
    assert models["A"]["ModelDataUrl"].endswith("/two-variants-1/model.tar.gz")
    assert models["B"]["ModelDataUrl"].endswith("/two-variants-1/model-2.tar.gz")
    uploads = {r.id for r in manifest.of_kind("s3-object")}
    assert uploads == {models["A"]["ModelDataUrl"], models["B"]["ModelDataUrl"]}
    pushed = {r.id for r in manifest.of_kind("ecr-image")}
    assert pushed == {
        "smlocal-multi/iris-a:two-variants-1",
        "smlocal-multi/iris-b:two-variants-1-2",
    }
    assert "two-variants-1" in _registry_tags(registry, "smlocal-multi/iris-a")
    assert "two-variants-1-2" in _registry_tags(registry, "smlocal-multi/iris-b")
    # Both variants are scaled: one target per variant.
    assert {r.id for r in manifest.of_kind("scalable-target")} >= {
        "endpoint/two-variants/variant/A",
        "endpoint/two-variants/variant/B",
    }

    run_cleanup(manifest, CleanupOptions(poll_interval_s=0.05))

    assert snapshot(clients) == before
    assert "two-variants-1" not in _registry_tags(registry, "smlocal-multi/iris-a")
    assert "two-variants-1-2" not in _registry_tags(registry, "smlocal-multi/iris-b")


def _config_name(manifest: Manifest) -> str:
    [config] = manifest.of_kind("sagemaker-endpoint-config")
    return config.id


def test_a_variant_without_its_own_contract_pass_is_refused_before_any_aws_call(
    tmp_path: Path, smlocal_home: Path, registry: str, variant_images: tuple[str, str], calls: Calls
) -> None:
    request = _two_variant_request(tmp_path, "half-gated", registry, variant_images)
    a = request.spec.variants[0]
    assert a.model is not None
    _pass_gate_for(a.image, a.model)  # only variant A's (image, model) passed
    with pytest.raises(GateRefusedError, match=r"refusing to promote smlocal-multi/iris-b"):
        prepare(request)
    assert calls == []
    assert not request.manifest_path.exists()
