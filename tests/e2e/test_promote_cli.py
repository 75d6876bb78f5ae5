"""`smlocal promote` → describe every resource → `smlocal cleanup`, run as a user runs them.

AWS is a moto server (reached with --endpoint-url), the push goes to a real local registry
(--registry-url), and the contract gate reads a pass written through contracts.ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from smlocal.promote.aws import Clients
from tests.aws_fakes import FAKE_CREDENTIALS, local_registry, moto_server, snapshot
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL
from tests.e2e.test_service_cli import assert_nothing_left

pytestmark = [pytest.mark.e2e, pytest.mark.docker]

REPO = Path(__file__).resolve().parents[2]
SMLOCAL = [sys.executable, "-m", "smlocal"]
# Nothing listens on the discard port: a refusal that made an AWS call would fail differently.
NO_AWS = "http://127.0.0.1:9"


@pytest.fixture(scope="module")
def aws_url() -> Iterator[str]:
    with moto_server() as url:
        yield url


@pytest.fixture()
def env(aws_url: str, smlocal_home: Path) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    return {
        **values,
        **FAKE_CREDENTIALS,
        "AWS_MAX_ATTEMPTS": "1",
        "SMLOCAL_HOME": str(smlocal_home),
    }


@pytest.fixture()
def clients(aws_url: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Clients:
    for key, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    return Clients("us-east-1", aws_url)


def _smlocal(
    *args: str, env: dict[str, str], cwd: Path, stdin: str = "", script: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `smlocal ARGS`, or the wrapper ``scripts/SCRIPT`` with ARGS."""
    command = ["bash", str(REPO / "scripts" / script)] if script else SMLOCAL
    return subprocess.run(
        [*command, *args],
        check=False,
        env=env,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _record_contract_pass() -> None:
    import docker

    from smlocal.contracts.ledger import record_pass
    from smlocal.contracts.model import SuiteReport
    from smlocal.contracts.specfile import ContractSpec, spec_digest
    from smlocal.emulator.artifacts import stage_model
    from smlocal.emulator.state import StateDir

    record_pass(
        SuiteReport(
            image=SKLEARN_IMAGE,
            image_id=docker.from_env().images.get(SKLEARN_IMAGE).id,
            model=str(SKLEARN_MODEL),
            model_digest=stage_model(SKLEARN_MODEL, StateDir().cache).digest,
            spec_path=None,
            spec_digest=spec_digest(ContractSpec()),
            instance_type="ml.m5.large",
        )
    )


def _pre_existing(clients: Clients) -> None:
    """Someone else's endpoint, bucket and repository, which cleanup must not touch."""
    sm = clients.sagemaker
    clients.ecr.create_repository(repositoryName="team/other-model")
    clients.s3.create_bucket(Bucket="team-other-bucket")
    clients.s3.put_object(Bucket="team-other-bucket", Key="keep.txt", Body=b"keep")
    sm.create_model(
        ModelName="other-model",
        PrimaryContainer={
            "Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/other-model:1"
        },
        ExecutionRoleArn="arn:aws:iam::123456789012:role/other",
    )
    sm.create_endpoint_config(
        EndpointConfigName="other-config",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "other-model",
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName="other-endpoint", EndpointConfigName="other-config")


def test_promote_describe_cleanup(
    tmp_path: Path, env: dict[str, str], aws_url: str, clients: Clients
) -> None:
    registry = local_registry()
    _record_contract_pass()
    _pre_existing(clients)
    before = snapshot(clients)
    (tmp_path / "loadtest.json").write_text(
        json.dumps({"target_invocations_per_instance": 240, "min_instances": 2, "max_instances": 6})
    )
    (tmp_path / "smlocal.toml").write_text(
        '[promote]\nregion = "us-east-1"\n\n[profiles.prod.promote]\ninstance_count = 2\n'
    )

    promoted = _smlocal(
        "promote", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--endpoint-name", "iris-prod",
        "--profile", "prod", "--scaling-from", "loadtest.json", "--alarm-email", "ops@example.com",
        "--data-capture", "s3://team-other-bucket/capture", "--deployment-id", "iris-prod-1",
        "--endpoint-url", aws_url, "--registry-url", registry, "--poll-interval", "0.05",
        env=env, cwd=tmp_path,
    )  # fmt: skip

    assert promoted.returncode == 0, promoted.stderr
    manifest_path = Path(env["SMLOCAL_HOME"]) / "deployments" / "iris-prod-1.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["status"] == "complete" and manifest["skip_gate"] is False
    assert {r["kind"] for r in manifest["resources"] if r["created"]} == {
        "ecr-repository", "ecr-image", "s3-bucket", "s3-object", "iam-role", "sagemaker-model",
        "sagemaker-endpoint-config", "sagemaker-endpoint", "sns-topic", "cloudwatch-alarm",
        "scalable-target", "scaling-policy",
    }  # fmt: skip
    sm, aas = clients.sagemaker, clients.autoscaling

    image = next(r for r in manifest["resources"] if r["kind"] == "ecr-image")["details"]
    with urllib.request.urlopen(f"http://{registry}/v2/{image['repository']}/tags/list") as answer:
        assert "iris-prod-1" in json.load(answer)["tags"]
    repo = clients.ecr.describe_repositories(repositoryNames=["smlocal/sklearn-iris"])
    assert repo["repositories"][0]["imageScanningConfiguration"]["scanOnPush"] is True

    model_name = next(r["id"] for r in manifest["resources"] if r["kind"] == "sagemaker-model")
    model = sm.describe_model(ModelName=model_name)
    tags = sm.list_tags(ResourceArn=model["ModelArn"])["Tags"]
    assert {"Key": "smlocal:deployment-id", "Value": "iris-prod-1"} in tags
    assert model["PrimaryContainer"]["Image"].endswith(f"smlocal/sklearn-iris@{image['digest']}")
    bucket = "smlocal-artifacts-123456789012-us-east-1"
    assert model["PrimaryContainer"]["ModelDataUrl"].startswith(f"s3://{bucket}/smlocal/iris-prod/")
    head = clients.s3.head_object(
        Bucket=bucket, Key="smlocal/iris-prod/iris-prod-1/model.tar.gz", ChecksumMode="ENABLED"
    )
    assert head["ChecksumSHA256"]
    versioning = clients.s3.get_bucket_versioning(Bucket=bucket)
    assert versioning["Status"] == "Enabled"
    block = clients.s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
    assert all(block.values())
    policy = clients.iam.get_role_policy(
        RoleName="smlocal-iris-prod-sagemaker", PolicyName="smlocal-endpoint-access"
    )["PolicyDocument"]
    resources = json.dumps(policy)
    assert f"arn:aws:s3:::{bucket}/smlocal/iris-prod/*" in resources
    assert "repository/smlocal/sklearn-iris" in resources

    endpoint = sm.describe_endpoint(EndpointName="iris-prod")
    assert endpoint["EndpointStatus"] == "InService"
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    [variant] = config["ProductionVariants"]
    assert (variant["VariantName"], variant["InstanceType"], variant["InitialInstanceCount"]) == (
        "AllTraffic", "ml.m5.large", 2,
    )  # fmt: skip
    assert config["DataCaptureConfig"]["DestinationS3Uri"] == "s3://team-other-bucket/capture"

    rid = "endpoint/iris-prod/variant/AllTraffic"
    [target] = aas.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[rid])[
        "ScalableTargets"
    ]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (2, 6)
    [policy_] = aas.describe_scaling_policies(ServiceNamespace="sagemaker", ResourceId=rid)[
        "ScalingPolicies"
    ]
    tracking = policy_["TargetTrackingScalingPolicyConfiguration"]
    assert tracking["TargetValue"] == 240
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == (
        "SageMakerVariantInvocationsPerInstance"
    )
    assert (tracking["ScaleInCooldown"], tracking["ScaleOutCooldown"]) == (600, 300)

    alarms = clients.cloudwatch.describe_alarms(AlarmNamePrefix="smlocal-iris-prod-")[
        "MetricAlarms"
    ]
    assert {a["MetricName"] for a in alarms} == {"Invocation5XXErrors", "ModelLatency"}
    latency = next(a for a in alarms if a["MetricName"] == "ModelLatency")
    assert latency["ExtendedStatistic"] == "p99"
    topic = next(r for r in manifest["resources"] if r["kind"] == "sns-topic")["arn"]
    assert all(a["AlarmActions"] == [topic] for a in alarms)
    subscriptions = clients.sns.list_subscriptions_by_topic(TopicArn=topic)["Subscriptions"]
    assert [(s["Protocol"], s["Endpoint"]) for s in subscriptions] == [("email", "ops@example.com")]

    asked = _smlocal(
        "cleanup", "--manifest", str(manifest_path), env=env, cwd=tmp_path, stdin="n\n"
    )
    assert asked.returncode == 1 and "nothing deleted" in asked.stderr
    assert "iris-prod" in snapshot(clients)["sagemaker-endpoint"]

    cleaned = _smlocal(
        "cleanup", "--deployment-id", "iris-prod-1", "--yes", "--poll-interval", "0.05",
        env=env, cwd=tmp_path,
    )  # fmt: skip

    assert cleaned.returncode == 0, cleaned.stderr
    after = snapshot(clients)
    assert after == before
    assert "other-endpoint" in after["sagemaker-endpoint"]
    assert (
        "team-other-bucket" in after["s3-bucket"] and "team/other-model" in after["ecr-repository"]
    )
    with urllib.request.urlopen(f"http://{registry}/v2/{image['repository']}/tags/list") as answer:
        assert "iris-prod-1" not in (json.load(answer)["tags"] or [])

    again = _smlocal(str(manifest_path), "--yes", env=env, cwd=tmp_path, script="cleanup.sh")
    assert again.returncode == 0
    assert "nothing to delete" in again.stdout


def test_dry_run_prints_every_call_and_makes_none(tmp_path: Path, env: dict[str, str]) -> None:
    _record_contract_pass()
    result = _smlocal(
        SKLEARN_IMAGE, str(SKLEARN_MODEL), "iris-dry", "--region", "us-east-1",
        "--endpoint-url", NO_AWS, "--dry-run", "--alarm-email", "a@b.c",
        "--gate", "accuracy>=0.9", "--eval-data", "rows.csv",
        env=env, cwd=tmp_path, script="promote.sh",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for call in (
        "ecr.create_repository", "ecr.get_authorization_token", "docker push", "s3.create_bucket",
        "iam.create_role", "sagemaker.create_model", "sagemaker.create_endpoint_config",
        "update_endpoint", "register_scalable_target", "put_scaling_policy", "sns.create_topic",
        "cloudwatch.put_metric_alarm",
    ):  # fmt: skip
        assert call in result.stdout
    assert "no AWS call was made" in result.stderr
    assert "the quality gate accuracy>=0.9 would run on rows.csv" in result.stderr
    assert "autoscaling: min 1 (default), max 4 (default), target 70" in result.stderr
    assert not (tmp_path / ".smlocal").exists()


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        ([], 3, "no passing contract-test record"),
        (["--serverless", "1500:10"], 2, "serverless memory 1500 MB is not allowed"),
        (["--endpoint-name", "bad_name!"], 2, "endpoint name 'bad_name!' is invalid"),
        (["--endpoint-name", "x" * 64], 2, "SageMaker allows 1-63 letters"),
    ],
)
def test_refusals_come_before_any_aws_call(
    extra: list[str], code: int, message: str, tmp_path: Path, env: dict[str, str]
) -> None:
    if code != 3:
        _record_contract_pass()
    result = _smlocal(
        "promote", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--endpoint-name", "iris",
        "--region", "us-east-1", "--endpoint-url", NO_AWS, *extra, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    if code == 3:
        assert "smlocal contract-test smlocal/sklearn-iris:latest --model" in result.stderr
    assert not (tmp_path / ".smlocal").exists()


def test_endpoint_from_the_config_promotes_every_variant(
    tmp_path: Path, env: dict[str, str]
) -> None:
    """`--endpoint NAME`: each variant's own image, model and settings, from smlocal.toml."""
    model_b = tmp_path / "model-b"
    model_b.mkdir()
    (model_b / "weights.txt").write_text("b\n")
    (tmp_path / "smlocal.toml").write_text(
        '[promote]\nregion = "us-east-1"\n\n[endpoints.iris-ab]\n'
        f'[[endpoints.iris-ab.variants]]\nname = "A"\nimage = "{SKLEARN_IMAGE}"\n'
        f'model = "{SKLEARN_MODEL}"\nweight = 3\n'
        f'[[endpoints.iris-ab.variants]]\nname = "B"\nimage = "{SKLEARN_IMAGE}"\n'
        'model = "model-b"\nweight = 1\ninstance_type = "ml.c5.xlarge"\n'
    )
    result = _smlocal(
        "promote", "--endpoint", "iris-ab", "--endpoint-url", NO_AWS, "--skip-gate",
        "--dry-run", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("sagemaker.create_model(") == 2
    assert result.stdout.count("s3 multipart upload") == 2
    assert "model-2.tar.gz" in result.stdout
    assert result.stdout.count("docker push") == 1  # one distinct image, one push
    assert "2 variant(s)" in result.stdout
    assert not (tmp_path / ".smlocal").exists()

    mixed = _smlocal(
        "promote", SKLEARN_IMAGE, "--endpoint", "iris-ab", "--endpoint-url", NO_AWS,
        "--dry-run", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert mixed.returncode == 2
    assert "not with --endpoint" in mixed.stderr


def test_promote_rehearses_create_and_update_on_the_local_service(
    tmp_path: Path, env: dict[str, str], aws_url: str, clients: Clients
) -> None:
    """SageMaker goes to `smlocal server` (real containers), everything else to moto: the
    second promote updates the endpoint blue/green, which moto cannot do."""
    registry = local_registry()
    _record_contract_pass()
    service_env = {**env, "AWS_ENDPOINT_URL_S3": aws_url}
    started = subprocess.run(
        [*SMLOCAL, "server", "--port", "0", "--detach", "--registry-mirror", registry],
        env=service_env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    service = started.stdout.strip().splitlines()[-1]
    promote_env = {**env, "AWS_ENDPOINT_URL": aws_url, "AWS_ENDPOINT_URL_SAGEMAKER": service}
    try:
        for deployment in ("iris-rehearsal-1", "iris-rehearsal-2"):
            promoted = _smlocal(
                "promote", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL), "--endpoint-name",
                "iris-rehearsal", "--region", "us-east-1", "--deployment-id", deployment,
                "--registry-url", registry, "--poll-interval", "0.2",
                env=promote_env, cwd=tmp_path,
            )  # fmt: skip
            assert promoted.returncode == 0, promoted.stderr
        assert "updating from" in promoted.stdout + promoted.stderr
        from smlocal.promote.aws import Clients as LocalClients

        local = LocalClients("us-east-1", service).sagemaker
        described = local.describe_endpoint(EndpointName="iris-rehearsal")
        assert described["EndpointStatus"] == "InService"
        manifest = json.loads(
            (Path(env["SMLOCAL_HOME"]) / "deployments" / "iris-rehearsal-2.json").read_text()
        )
        config = next(r for r in manifest["resources"] if r["kind"] == "sagemaker-endpoint-config")
        assert described["EndpointConfigName"] == config["id"]
        assert len(described["ProductionVariants"]) == 1
        import boto3

        runtime = boto3.client("sagemaker-runtime", endpoint_url=service, region_name="us-east-1")
        answer = runtime.invoke_endpoint(
            EndpointName="iris-rehearsal",
            Body=json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}),
            ContentType="application/json",
        )
        assert b"setosa" in answer["Body"].read()
        for deployment in ("iris-rehearsal-2", "iris-rehearsal-1"):
            cleaned = _smlocal(
                "cleanup", "--deployment-id", deployment, "--yes", "--poll-interval", "0.2",
                env=promote_env, cwd=tmp_path,
            )  # fmt: skip
            assert cleaned.returncode == 0, cleaned.stderr
        assert local.list_endpoints()["Endpoints"] == []
    finally:
        subprocess.run(
            [*SMLOCAL, "server", "stop"], env=service_env, capture_output=True, timeout=120,
            check=False,
        )  # fmt: skip
        assert_nothing_left(Path(env["SMLOCAL_HOME"]))
