"""`smlocal loadtest` as users run it: find-max on the sklearn reference image, SigV4 on the
real-endpoint path, and Locust's distributed mode."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.conftest import SKLEARN_IMAGE, SKLEARN_MODEL, fixture_image

SMLOCAL = str(Path(sys.executable).parent / "smlocal")
PAYLOAD = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
ACCESS_KEY = "AKIDSMLOCALLOADTEST"
SECRET_KEY = "smlocal-loadtest-secret-key"
REGION = "eu-west-1"


def smlocal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SMLOCAL, "loadtest", *args],
        capture_output=True, text=True, timeout=240, check=False, env=env,
    )  # fmt: skip


def aggregated(stats_csv: Path) -> dict[str, str]:
    with stats_csv.open() as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")


@pytest.mark.docker
@pytest.mark.e2e
def test_find_max_on_sklearn_reports_max_rps_from_locust_stats(
    docker_images: None, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(PAYLOAD)
    report = tmp_path / "report"
    result = smlocal(
        "lt-iris", "--image", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL),
        "--payload", str(payload), "--find-max", "--step-seconds", "3", "--max-steps", "4",
        "--peak-rps", "500", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "MAX_RPS (one instance)" in result.stdout
    # Off a terminal (this pipe), one plain progress line per step, as it ends.
    progress = [line for line in result.stderr.splitlines() if "— step " in line]
    assert len(progress) == len(json.loads((report / "loadtest-summary.json").read_text())["steps"])
    assert "step 01: 1 users" in progress[0] and "req/s" in progress[0]
    for name in ("loadtest-summary.json", "loadtest.png", "report.html"):
        assert (report / name).stat().st_size > 0
    assert (report / "loadtest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((report / "loadtest-summary.json").read_text())
    steps = summary["steps"]
    users = [s["users"] for s in steps]
    levels = sorted(set(users))
    assert 2 <= len(levels) <= 4 and levels == [1, 2, 4, 8][: len(levels)]
    assert users == sorted(users) and all(users.count(u) <= 2 for u in levels)  # one repeat
    for step in steps:  # every figure is Locust's own
        row = aggregated(report / step["stats_csv"])
        assert step["requests"] == int(row["Request Count"])
        assert step["failures"] == int(row["Failure Count"])
        assert step["rps"] == pytest.approx(float(row["Requests/s"]))
        assert step["p95_ms"] == float(row["95%"])
    best = next(s for s in steps if s["users"] == summary["find_max"]["max_rps_step_users"])
    assert (
        summary["max_rps"]
        == best["rps"]
        == max(
            s["rps"]
            for s in steps
            if s["failures"] == 0 and s["p95_ms"] <= summary["find_max"]["latency_bound_ms"]
        )
    )
    unloaded = steps[0]["p95_ms"]
    assert summary["find_max"]["latency_bound_ms"] == max(2 * unloaded, unloaded + 10)
    assert summary["target_invocations_per_instance"] == round(summary["max_rps"] * 0.5 * 60, 2)
    assert summary["max_instances"] == -(-500 // (summary["max_rps"] * 0.5))
    assert summary["cost_per_hour_usd"]["min"] == summary["price_per_instance_hour_usd"]
    assert summary["instance_type"] == "ml.m5.large"


@pytest.mark.docker
@pytest.mark.e2e
def test_spec_examples_are_the_payloads(docker_images: None, tmp_path: Path) -> None:
    spec = Path(__file__).parents[2] / "contracts" / "specs" / "sklearn-iris.yaml"
    report = tmp_path / "report"
    result = smlocal(
        "lt-spec", "--image", SKLEARN_IMAGE, "--model", str(SKLEARN_MODEL),
        "--spec", str(spec), "--users", "1", "--duration", "2", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sending 3 example(s)" in result.stderr
    summary = json.loads((report / "loadtest-summary.json").read_text())
    with (report / summary["steps"][0]["stats_csv"]).open() as handle:
        rows = {row["Name"]: row for row in csv.DictReader(handle)}
    path = "/endpoints/lt-spec/invocations"
    # The 2xx examples, JSON and CSV, each in its own Locust row, all answered; the example
    # expecting 400 (json-wrong-width) is not sent.
    names = [f"{path} [{n}]" for n in ("json-two-rows", "csv-two-rows", "csv-default-accept")]
    assert set(rows) == {*names, "Aggregated"}
    counts = [int(rows[n]["Request Count"]) for n in names]
    assert min(counts) >= 1 and max(counts) - min(counts) <= 1  # one shared rotation
    assert sum(counts) == summary["totals"]["requests"]
    assert summary["totals"]["failures"] == 0


class _SigV4Checker(BaseHTTPRequestHandler):
    """Recomputes each request's SigV4 signature with the known secret, as AWS would."""

    verdicts: ClassVar[list[str]] = []
    protocol_version = "HTTP/1.1"  # keep-alive, as Locust's client and SageMaker use

    def log_message(self, *_args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        verdict = verify(self.command, self.path, dict(self.headers.items()), body, self.server)
        self.verdicts.append(verdict)
        ok = verdict == "valid"
        self.send_response(200 if ok else 403)
        if not ok:
            self.send_header("x-amzn-errortype", "InvalidSignatureException")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def verify(method: str, path: str, headers: dict[str, str], body: bytes, server: object) -> str:
    lower = {k.lower(): v for k, v in headers.items()}
    auth = lower.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return f"not SigV4: {auth[:20]!r}"
    parts = dict(p.strip().split("=", 1) for p in auth.removeprefix("AWS4-HMAC-SHA256 ").split(","))
    key, date, region, service, terminal = parts["Credential"].split("/")
    if (key, region, service, terminal) != (ACCESS_KEY, REGION, "sagemaker", "aws4_request"):
        return f"wrong scope {parts['Credential']}"
    signed = parts["SignedHeaders"].split(";")
    host, port = server.server_address[:2]  # type: ignore[attr-defined]
    request = AWSRequest(
        method=method, url=f"http://{host}:{port}{path}", data=body,
        headers={name: lower[name] for name in signed if name != "host"},
    )  # fmt: skip
    request.context["timestamp"] = lower["x-amz-date"]
    signer = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "sagemaker", REGION)
    expected = signer.signature(
        signer.string_to_sign(request, signer.canonical_request(request)), request
    )
    if date != lower["x-amz-date"][:8] or expected != parts["Signature"]:
        return "bad signature"
    return "valid"


@pytest.fixture()
def sigv4_server() -> Iterator[ThreadingHTTPServer]:
    _SigV4Checker.verdicts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SigV4Checker)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.e2e
def test_aws_target_signs_every_request_with_sigv4(
    sigv4_server: ThreadingHTTPServer, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(PAYLOAD)
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
    }
    env.pop("AWS_SESSION_TOKEN", None)
    url = f"http://127.0.0.1:{sigv4_server.server_address[1]}"
    result = smlocal(
        "aws:prod-endpoint", "--endpoint-url", url, "--region", REGION,
        "--payload", str(payload), "--users", "2", "--duration", "2",
        "--report", str(tmp_path / "report"), env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert SECRET_KEY not in result.stdout + result.stderr
    summary = json.loads((tmp_path / "report" / "loadtest-summary.json").read_text())
    verdicts = _SigV4Checker.verdicts
    assert summary["target"] == {"kind": "aws", "url": url, "variant": None}
    assert summary["totals"]["failures"] == 0
    # Locust stops its 2 users mid-request: a request the server already saw may be cancelled
    # and not counted, so the server can see up to one more per user than Locust reports.
    assert len(verdicts) - 2 <= summary["totals"]["requests"] <= len(verdicts)
    assert len(verdicts) > 20
    assert set(verdicts) == {"valid"}
    # The checker is not a rubber stamp: it accepts botocore's signature and refuses the same
    # headers over a changed body, or no signature at all.
    url_path = "/endpoints/prod-endpoint/invocations"
    host, port = sigv4_server.server_address[:2]
    assert isinstance(host, str)
    signed = AWSRequest(
        method="POST", url=f"http://{host}:{port}{url_path}", data=PAYLOAD,
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY), "sagemaker", REGION).add_auth(signed)
    headers = dict(signed.headers.items())
    assert verify("POST", url_path, headers, PAYLOAD, sigv4_server) == "valid"
    assert verify("POST", url_path, headers, PAYLOAD + b" ", sigv4_server) == "bad signature"
    assert verify("POST", url_path, {}, PAYLOAD, sigv4_server).startswith("not SigV4")


@pytest.mark.docker
@pytest.mark.e2e
def test_distributed_mode_runs_master_and_workers(docker_images: None, tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(PAYLOAD)
    report = tmp_path / "report"
    result = smlocal(
        "lt-echo", "--image", fixture_image("echo"), "--payload", str(payload),
        "--users", "4", "--duration", "3", "--workers", "2", "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((report / "loadtest-summary.json").read_text())
    assert summary["generator"]["workers"] == 2
    row = aggregated(report / summary["steps"][0]["stats_csv"])
    assert summary["totals"]["requests"] == int(row["Request Count"]) > 100
    assert summary["totals"]["failures"] == 0


@pytest.mark.docker
@pytest.mark.e2e
def test_a_running_endpoint_on_the_service_is_the_target(
    docker_images: None, smlocal_home: Path, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"x": 1}')
    missing = smlocal("lt-absent", "--payload", str(payload), "--users", "1", "--duration", "1")
    assert missing.returncode == 1
    assert "no endpoint named lt-absent on the local service" in missing.stderr
    served = subprocess.run(
        [SMLOCAL, "serve", "smlocal-fixture/echo:latest", "--name", "lt-served", "--port", "0",
         "-d"],
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert served.returncode == 0, served.stderr
    report = tmp_path / "report"
    result = smlocal(
        "lt-served", "--payload", str(payload), "--users", "1", "--duration", "2",
        "--report", str(report),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((report / "loadtest-summary.json").read_text())
    assert summary["totals"]["requests"] > 0
    assert summary["totals"]["failures"] == 0
