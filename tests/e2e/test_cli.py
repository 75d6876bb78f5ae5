"""The smlocal CLI as a user runs it: serve --detach, ps, invoke, stop, logs, failures, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT
from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

pytestmark = [pytest.mark.docker, pytest.mark.e2e]
SMLOCAL = str(Path(sys.executable).parent / "smlocal")


def smlocal(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMLOCAL, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def containers_of(name: str) -> list[object]:
    return docker.from_env().containers.list(
        ignore_removed=True, all=True, filters={"label": f"{LABEL_ENDPOINT}={name}"}
    )


def test_help_teaches() -> None:
    result = smlocal("serve", "--help")
    assert result.returncode == 0
    assert "--model" in result.stdout
    assert "read-only" in result.stdout.lower()


def test_detached_endpoint_lifecycle(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    started = smlocal(
        "serve",
        SKLEARN_IMAGE,
        "--model",
        str(SKLEARN_MODEL),
        "--name",
        "cli-iris",
        "--port",
        "0",
        "--detach",
    )
    assert started.returncode == 0, started.stderr
    url = started.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:")
    try:
        listed = smlocal("ps")
        assert "cli-iris" in listed.stdout
        assert "InService" in listed.stdout
        document = json.loads(smlocal("ps", "--json").stdout)
        assert document["service"]["url"] == url
        (row,) = document["endpoints"]
        assert (row["name"], row["status"]) == ("cli-iris", "InService")
        assert SKLEARN_IMAGE in row["variants"]
        payload = tmp_path / "payload.json"
        payload.write_text(json.dumps({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        answer = smlocal("invoke", "cli-iris", "--body", f"@{payload}")
        assert answer.returncode == 0, answer.stderr
        assert json.loads(answer.stdout)["predictions"][0]["predicted_class"] == "setosa"
        refused = smlocal("invoke", "cli-iris", "--body", "hello", "--content-type", "text/plain")
        assert refused.returncode == 1
        assert "ModelError" in refused.stderr
        assert "415" in refused.stderr
        again = smlocal("serve", SKLEARN_IMAGE, "--name", "cli-iris", "--detach")
        assert again.returncode == 2
        assert "already running" in again.stderr
    finally:
        stopped = smlocal("stop", "cli-iris")
    assert stopped.returncode == 0, stopped.stderr
    assert not containers_of("cli-iris")
    assert "cli-iris" not in smlocal("ps").stdout
    assert "AllTraffic/0 |" in smlocal("logs", "cli-iris").stdout


def test_several_endpoints_run_at_once(docker_images: None, smlocal_home: Path) -> None:
    names = ("cli-one", "cli-two")
    try:
        urls = []
        for name in names:
            started = smlocal("serve", fixture_image("echo"), "--name", name, "--port", "0", "-d")
            assert started.returncode == 0, started.stderr
            urls.append(started.stdout.strip().splitlines()[-1])
        assert len(set(urls)) == 1  # one service, one port, routed by endpoint name
        for name in names:
            answer = smlocal("invoke", name, "--body", f'{{"who": "{name}"}}')
            assert answer.returncode == 0, answer.stderr
            assert json.loads(answer.stdout) == {"who": name}
    finally:
        stopped = smlocal("stop", "--all")
    assert stopped.returncode == 0, stopped.stderr
    assert not containers_of("cli-one")
    assert not containers_of("cli-two")


def test_failed_endpoint_exits_non_zero_with_reason_and_logs(
    docker_images: None, smlocal_home: Path
) -> None:
    result = smlocal("serve", fixture_image("exit-at-start"), "--name", "cli-broken", "--port", "0")
    assert result.returncode == 1
    assert "exited with code 3" in result.stderr
    assert "failing on purpose" in result.stderr + result.stdout
    assert not containers_of("cli-broken")


def test_detached_failure_exits_non_zero(docker_images: None, smlocal_home: Path) -> None:
    result = smlocal(
        "serve", fixture_image("exit-at-start"), "--name", "cli-broken-d", "--port", "0", "--detach"
    )
    assert result.returncode == 1
    assert "failed" in result.stderr
    assert "exited with code 3" in result.stderr
    # the container's own last lines, where the user is looking, not only a log path
    assert "failing on purpose" in result.stderr
    assert not containers_of("cli-broken-d")


def _ctrl_c_foreground_serve(image: str, name: str) -> tuple[int, str]:
    """Start a foreground serve, Ctrl-C it a second after its container appears."""
    process = subprocess.Popen(
        [SMLOCAL, "serve", fixture_image(image), "--name", name, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not containers_of(name):
        time.sleep(0.1)
    time.sleep(1)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    return process.returncode, stderr


def test_ctrl_c_while_creating_exits_130_and_leaves_nothing(
    docker_images: None, smlocal_home: Path
) -> None:
    code, stderr = _ctrl_c_foreground_serve("never-listens", "cli-creating")
    assert code == 130, stderr
    assert "stopped before InService" in stderr
    assert not containers_of("cli-creating")


def test_serve_from_config_refuses_single_variant_flags(smlocal_home: Path) -> None:
    result = smlocal("serve", "--instance-type", "ml.c5.xlarge", "--env", "A=1")
    assert result.returncode == 2
    assert "--env, --instance-type: not without IMAGE" in result.stderr


def test_ctrl_c_stops_the_containers(docker_images: None, smlocal_home: Path) -> None:
    code, stderr = _ctrl_c_foreground_serve("echo", "cli-ctrlc")
    assert code == 0, stderr
    assert "InService" in stderr
    assert not containers_of("cli-ctrlc")


@pytest.mark.parametrize(
    ("args", "needle", "code"),
    [
        (["--instance-type", "ml.bogus"], "unknown instance type", 2),
        (["--env", "NOEQUALS"], "KEY=VALUE", 2),
        (["--model", "/does/not/exist.tar.gz"], "/does/not/exist.tar.gz", 2),
        (["--name", "bad_name"], "--name: 1-63 letters, digits and hyphens", 2),
        (["--startup-timeout", "10"], "--startup-timeout: Input should be greater than", 2),
    ],
)
def test_bad_input_is_a_clear_error_not_a_traceback(
    docker_images: None, smlocal_home: Path, args: list[str], needle: str, code: int
) -> None:
    result = smlocal("serve", fixture_image("echo"), "--port", "0", *args)
    assert result.returncode == code, result.stderr
    assert needle in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_image_is_a_clear_error(docker_images: None, smlocal_home: Path) -> None:
    result = smlocal("serve", "smlocal/does-not-exist:latest", "--port", "0")
    assert result.returncode == 2
    assert "not in the local Docker engine" in result.stderr
    assert "Traceback" not in result.stderr


def test_busy_port_is_a_clear_error(docker_images: None, smlocal_home: Path) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        result = smlocal("serve", fixture_image("echo"), "--port", str(port))
        detached = smlocal("serve", fixture_image("echo"), "--port", str(port), "--detach")
    assert result.returncode == 2
    assert "already in use" in result.stderr
    assert detached.returncode == 2
    # said once: not a generic "exited before it was up" line and then the same words again
    assert detached.stderr.count("error:") == 1, detached.stderr
    assert "already in use" in detached.stderr
    assert os.environ.get("SMLOCAL_HOME")


def test_serve_from_config_with_two_weighted_variants(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    (tmp_path / "smlocal.toml").write_text(
        f"""
[endpoints.ab-test]
[[endpoints.ab-test.variants]]
name = "Blue"
image = "{fixture_image("echo")}"
weight = 1
[[endpoints.ab-test.variants]]
name = "Green"
image = "{fixture_image("echo")}"
weight = 1
"""
    )
    started = subprocess.run(
        [SMLOCAL, "serve", "--port", "0", "--detach"],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=tmp_path,
    )
    assert started.returncode == 0, started.stderr
    try:
        assert len(containers_of("ab-test")) == 2
        pinned = smlocal("invoke", "ab-test", "--body", "{}", "--target-variant", "Green")
        assert pinned.returncode == 0, pinned.stderr
        assert "variant Green" in pinned.stderr
    finally:
        smlocal("stop", "ab-test")
    assert not containers_of("ab-test")


def test_serve_uses_a_running_service_and_stop_deletes_only_what_serve_made(
    docker_images: None, smlocal_home: Path
) -> None:
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    service = smlocal("server", "--port", "0", "--detach")
    assert service.returncode == 0, service.stderr
    url = service.stdout.strip().splitlines()[-1]
    client = boto3.client(
        "sagemaker",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED),
    )
    client.create_model(ModelName="users-own", PrimaryContainer={"Image": fixture_image("echo")})
    started = smlocal("serve", fixture_image("echo"), "--name", "cli-on-service", "-d")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip().splitlines()[-1] == url
    assert "on the running smlocal service" in started.stderr
    described = client.describe_endpoint(EndpointName="cli-on-service")
    assert described["EndpointStatus"] == "InService"
    # a foreground serve of the same name is refused and leaves the first one serving
    clash = smlocal("serve", fixture_image("echo"), "--name", "cli-on-service")
    assert clash.returncode == 2, clash.stderr
    assert "already running" in clash.stderr
    answer = smlocal("invoke", "cli-on-service", "--body", '{"still": "here"}')
    assert json.loads(answer.stdout) == {"still": "here"}
    stopped = smlocal("stop", "cli-on-service")
    assert stopped.returncode == 0, stopped.stderr
    assert [m["ModelName"] for m in client.list_models()["Models"]] == ["users-own"]
    assert client.list_endpoint_configs()["EndpointConfigs"] == []
    missing = smlocal("stop", "cli-on-service")
    assert missing.returncode == 1
    assert "no endpoint named cli-on-service" in missing.stderr


def test_logs_follow_ends_when_the_endpoint_is_deleted(
    docker_images: None, smlocal_home: Path
) -> None:
    started = smlocal("serve", fixture_image("echo"), "--name", "cli-follow", "--port", "0", "-d")
    assert started.returncode == 0, started.stderr
    follower = subprocess.Popen(
        [SMLOCAL, "logs", "cli-follow", "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        assert follower.poll() is None  # still following while the endpoint serves
        assert smlocal("stop", "cli-follow").returncode == 0
        output, errors = follower.communicate(timeout=30)
    finally:
        follower.kill()
    assert follower.returncode == 0, errors
    assert "echo listening" in output
    assert "no longer on the service" in errors


def _foreground_in_service(name: str) -> subprocess.Popen[str]:
    """A foreground `serve` of the echo fixture, once its endpoint is InService."""
    process = subprocess.Popen(
        [SMLOCAL, "serve", fixture_image("echo"), "--name", name, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and "InService" not in smlocal("ps").stdout:
        time.sleep(0.2)
    return process


def test_a_foreground_serve_ends_cleanly_when_its_endpoint_is_stopped_elsewhere(
    docker_images: None, smlocal_home: Path
) -> None:
    process = _foreground_in_service("cli-elsewhere")
    try:
        stopped = smlocal("stop", "cli-elsewhere")
        assert stopped.returncode == 0, stopped.stderr
        _, errors = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, errors
    assert "deleted on the service" in errors
    assert not containers_of("cli-elsewhere")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])  # SIGHUP: terminal closed
def test_a_signal_to_a_foreground_serve_deletes_its_endpoint_and_its_service(
    docker_images: None, smlocal_home: Path, signum: signal.Signals
) -> None:
    process = _foreground_in_service("cli-signal")
    process.send_signal(signum)
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors
    assert "smlocal service at http://127.0.0.1:" in errors  # where to call it, foreground too
    assert not containers_of("cli-signal")
    assert "no smlocal service is running" in smlocal("ps").stderr


def test_bad_model_with_detach_starts_no_service(smlocal_home: Path, docker_images: None) -> None:
    result = smlocal("serve", fixture_image("echo"), "--model", "/nope/model.tar.gz", "-d")
    assert result.returncode == 2, result.stderr
    assert "/nope/model.tar.gz" in result.stderr
    assert "started the smlocal service" not in result.stderr
    assert smlocal("server", "status").returncode == 1


def test_two_detached_serves_at_once_share_one_new_service(
    docker_images: None, smlocal_home: Path
) -> None:
    starts = [
        subprocess.Popen(
            [SMLOCAL, "serve", fixture_image("echo"), "--name", name, "--port", "0", "-d"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("cli-race-a", "cli-race-b")
    ]
    results = [(p.communicate(timeout=180), p.returncode) for p in starts]
    assert [code for _, code in results] == [0, 0], [err for (_, err), _ in results]
    urls = {out.strip().splitlines()[-1] for (out, _), _ in results}
    assert len(urls) == 1


def test_invoke_writes_the_answer_bytes_unchanged_when_piped(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    started = smlocal("serve", fixture_image("echo"), "--name", "cli-bytes", "--port", "0", "-d")
    assert started.returncode == 0, started.stderr
    payload = tmp_path / "blob.bin"
    payload.write_bytes(bytes(range(256)))
    answer = subprocess.run(
        [SMLOCAL, "invoke", "cli-bytes", "--body", f"@{payload}",
         "--content-type", "application/octet-stream"],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert answer.stdout == bytes(range(256))
    compact = subprocess.run(
        [SMLOCAL, "invoke", "cli-bytes", "--body", '{"a":1}'],
        capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert compact.stdout == b'{"a":1}'  # not re-indented
    assert smlocal("logs", "cli-bytes", "--tail", "0").stdout == ""
    never = smlocal("logs", "cli-never-was", "--follow")
    assert never.returncode == 1
    assert "no endpoint named cli-never-was" in never.stderr


def test_a_forgotten_model_is_named_within_seconds(docker_images: None, smlocal_home: Path) -> None:
    """The sklearn image without --model answers /ping 503 for good: say why, long before
    the 480 s startup window closes."""
    process = subprocess.Popen(
        [SMLOCAL, "serve", SKLEARN_IMAGE, "--name", "cli-no-model", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    started = time.monotonic()
    seen = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if "hint:" in line or time.monotonic() - started > 60:
                break
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=60)
    assert any("hint:" in line and "pass --model" in line for line in seen), seen[-5:]
    assert time.monotonic() - started < 40
    assert not containers_of("cli-no-model")
