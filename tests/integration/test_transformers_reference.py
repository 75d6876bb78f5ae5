"""The reference transformers image served by the emulator on real Docker, called via boto3.

Self-sufficient: the session fixture trains the tiny sentiment model (when it is missing or
older than ``train.py``) and builds ``smlocal/transformers-text:latest`` with
``scripts/build-image.sh`` (Docker's layer cache makes a repeat build take seconds), so this
module needs neither ``make`` nor the sklearn/fixture images the shared fixtures build.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from smlocal.emulator.backend import LABEL_ENDPOINT
from smlocal.emulator.docker_backend import DockerBackend
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.spec import build_spec
from tests.conftest import REPO
from tests.harness import Serving, serving

CONTEXT = REPO / "containers" / "transformers"
TRANSFORMERS_IMAGE = "smlocal/transformers-text:latest"
TRANSFORMERS_MODEL = CONTEXT / "build" / "model.tar.gz"
ENDPOINT = "transformers-text"
LABELS = {"POSITIVE", "NEGATIVE"}
POSITIVE_TEXT = "I thought the concert was wonderful"
NEGATIVE_TEXT = "honestly, the service is terrible"


@pytest.fixture(scope="session")
def transformers_image() -> str:
    """Train the model if stale, then build the image (what `make transformers-image` does)."""
    train = CONTEXT / "train.py"
    if (
        not TRANSFORMERS_MODEL.exists()
        or TRANSFORMERS_MODEL.stat().st_mtime < train.stat().st_mtime
    ):
        subprocess.run(
            [sys.executable, str(train), "--out", str(TRANSFORMERS_MODEL)],
            check=True,
            cwd=REPO,
        )
    subprocess.run(
        ["bash", "scripts/build-image.sh", "containers/transformers", TRANSFORMERS_IMAGE],
        check=True,
        cwd=REPO,
    )
    return TRANSFORMERS_IMAGE


@pytest.fixture(scope="module")
def transformers_endpoint(
    transformers_image: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serving]:
    backend = DockerBackend()
    spec = build_spec(
        name=ENDPOINT,
        variants=[
            {
                "image": transformers_image,
                "model": str(TRANSFORMERS_MODEL),
                # Two workers, so a request may reach either: both must have loaded the model
                # (or wait for it) once /ping said 200.
                "env": {"SAGEMAKER_MODEL_SERVER_WORKERS": "2"},
            }
        ],
        # torch + transformers import in ~5 s alone, ~20 s on a busy 2-core machine.
        startup_timeout_s=180,
    )
    settings = MonitorSettings(host_cpus=backend.host_cpus())
    with serving(spec, backend, tmp_path_factory.mktemp("home"), settings, wait_s=300) as handle:
        assert handle.status == "InService", handle.sink.statuses
        yield handle


def _invoke(endpoint: Serving, payload: Any) -> Any:
    client: Any = endpoint.runtime_client()
    response = client.invoke_endpoint(
        EndpointName=ENDPOINT, Body=json.dumps(payload), ContentType="application/json"
    )
    assert response["ContentType"].startswith("application/json")
    return json.loads(response["Body"].read())


def _check_ranked(results: list[dict[str, Any]], best: str, count: int) -> None:
    assert len(results) == count
    assert results[0]["label"] == best
    assert results[0]["score"] > 0.9
    assert {r["label"] for r in results} <= LABELS
    scores = [r["score"] for r in results]
    assert scores == sorted(scores, reverse=True)


def test_single_text_gets_one_label(transformers_endpoint: Serving) -> None:
    (answer,) = _invoke(transformers_endpoint, {"inputs": POSITIVE_TEXT})
    assert answer["label"] == "POSITIVE"
    assert 0.9 < answer["score"] <= 1.0


def test_batch_gets_one_label_per_text(transformers_endpoint: Serving) -> None:
    # The pipeline's shape: a flat list, one {"label", "score"} per input.
    answers = _invoke(transformers_endpoint, {"inputs": [POSITIVE_TEXT, NEGATIVE_TEXT] * 3})
    assert [a["label"] for a in answers] == ["POSITIVE", "NEGATIVE"] * 3
    assert all(a["score"] > 0.9 for a in answers)


def test_top_k_ranks_labels(transformers_endpoint: Serving) -> None:
    ranked = _invoke(transformers_endpoint, {"inputs": NEGATIVE_TEXT, "parameters": {"top_k": 2}})
    _check_ranked(ranked, "NEGATIVE", 2)
    assert abs(sum(r["score"] for r in ranked) - 1.0) < 1e-4  # softmax over both labels


def test_top_k_on_a_batch_gives_a_list_per_text(transformers_endpoint: Serving) -> None:
    answers = _invoke(
        transformers_endpoint,
        {"inputs": [POSITIVE_TEXT, NEGATIVE_TEXT], "parameters": {"top_k": None}},
    )
    assert len(answers) == 2
    _check_ranked(answers[0], "POSITIVE", 2)
    _check_ranked(answers[1], "NEGATIVE", 2)


def test_long_input_is_truncated(transformers_endpoint: Serving) -> None:
    text = " ".join([POSITIVE_TEXT] * 200)  # ~1,400 tokens; the model takes 128
    (answer,) = _invoke(transformers_endpoint, {"inputs": text, "parameters": {"max_length": 64}})
    assert answer["label"] == "POSITIVE"


def test_text_plain_is_a_model_error_with_415(transformers_endpoint: Serving) -> None:
    client: Any = transformers_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=b"hello", ContentType="text/plain")
    assert caught.value.response["OriginalStatusCode"] == 415


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b'{"inputs": "good"', id="malformed-json"),
        pytest.param(b'{"text": "good"}', id="no-inputs-key"),
        pytest.param(b'{"inputs": 3}', id="inputs-not-text"),
        pytest.param(b'{"inputs": ["good", 3]}', id="list-item-not-text"),
        pytest.param(b'{"inputs": []}', id="empty-list"),
        pytest.param(b'{"inputs": "  "}', id="blank-text"),
        pytest.param(b'{"inputs": "good", "parameters": {"top_k": 0}}', id="bad-top-k"),
        pytest.param(b'{"inputs": "good", "parameters": {"top_k": "2"}}', id="top-k-string"),
        pytest.param(b'{"inputs": "good", "parameters": {"max_length": 4096}}', id="max-length"),
        pytest.param(b'{"inputs": "good", "parameters": {"beam": 1}}', id="unknown-parameter"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
    ],
)
def test_bad_input_is_a_model_error_with_400(transformers_endpoint: Serving, body: bytes) -> None:
    client: Any = transformers_endpoint.runtime_client()
    with pytest.raises(client.exceptions.ModelError) as caught:
        client.invoke_endpoint(EndpointName=ENDPOINT, Body=body, ContentType="application/json")
    assert caught.value.response["OriginalStatusCode"] == 400
    assert "error" in json.loads(caught.value.response["OriginalMessage"])


def test_still_answers_after_bad_input(transformers_endpoint: Serving) -> None:
    (answer,) = _invoke(transformers_endpoint, {"inputs": NEGATIVE_TEXT})
    assert answer["label"] == "NEGATIVE"


def test_container_runs_offline_the_way_sagemaker_runs_it(transformers_endpoint: Serving) -> None:
    client = docker.from_env()
    (container,) = client.containers.list(filters={"label": f"{LABEL_ENDPOINT}={ENDPOINT}"})
    attrs = container.attrs
    assert attrs["Args"] == ["serve"] or attrs["Config"]["Cmd"] == ["serve"]
    (mount,) = [m for m in attrs["Mounts"] if m["Destination"] == "/opt/ml/model"]
    assert mount["RW"] is False
    env = attrs["Config"]["Env"]
    assert "HF_HUB_OFFLINE=1" in env
    assert "TRANSFORMERS_OFFLINE=1" in env
    # exec-form ENTRYPOINT: serve.py execs gunicorn, so gunicorn's master is PID 1.
    exit_code, cmdline = container.exec_run(["cat", "/proc/1/cmdline"])
    assert exit_code == 0
    assert b"gunicorn" in cmdline, cmdline
