"""Multi-model endpoints on the local service, through boto3's real clients and the fake backend:
TargetModel routing, one fetch and load per model, 507 -> unload the least recently used, the
Disabled cache, ModelNotReadyException, AWS's errors (reference §D), and the LRU cache alone."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import tarfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from smlocal.emulator import multi_model
from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.errors import ImageNotFoundError
from smlocal.emulator.multi_model_cache import InstanceModels, ModelLoadError
from smlocal.emulator.multi_model_config import CAPABILITY_LABEL, model_name_for
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage, echo_handler

FAST = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
WAIT = {"Delay": 0.2, "MaxAttempts": 150}


class FakeModelServer:
    """A container's MME API (reference §D.1) in memory: at most ``limit`` models (507 past
    it), loads taking ``load_delay_s``, a load of a model named in ``refuse`` answering 500."""

    def __init__(self) -> None:
        self.limit: int | None = None
        self.load_delay_s = 0.0
        self.refuse: set[str] = set()
        self.loaded: dict[str, str] = {}
        self.loads: list[str] = []
        self.unloads: list[str] = []
        self.lock = threading.Lock()

    def __call__(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        if path == "/ping":
            return 200, {}, b""
        if method == "POST" and path == "/models":
            request = json.loads(body)
            name = request["model_name"]
            time.sleep(self.load_delay_s)
            with self.lock:
                self.loads.append(name)
                if name in self.refuse:
                    return 500, {}, b'{"error": "cannot load"}'
                if name in self.loaded:
                    return 409, {}, b'{"error": "already loaded"}'
                if self.limit is not None and len(self.loaded) >= self.limit:
                    return 507, {}, b'{"error": "out of memory"}'
                self.loaded[name] = request["url"]
            return 200, {}, b'{"status": "loaded"}'
        name = path.split("/")[2] if path.startswith("/models/") else ""
        if method == "DELETE" and name:
            with self.lock:
                self.unloads.append(name)
                if self.loaded.pop(name, None) is None:
                    return 404, {}, b""
            return 200, {}, b'{"status": "unloaded"}'
        if method == "POST" and path == f"/models/{name}/invoke":
            if name not in self.loaded:
                return 404, {}, b'{"error": "not loaded"}'
            answer = {
                "model": name,
                "url": self.loaded[name],
                "target": headers.get("x-amzn-sagemaker-target-model"),
                "body": body.decode(),
            }
            return 200, {"content-type": "application/json"}, json.dumps(answer).encode()
        return 404, {}, b""


class LabelledBackend(FakeBackend):
    """The fake backend with image labels (the capability check reads them)."""

    def image_info(self, image: str) -> dict[str, Any]:
        if image not in self.images:
            raise ImageNotFoundError(f"image {image!r} is not in the local Docker engine")
        labels = {CAPABILITY_LABEL: "true"} if image == "mme:1" else {}
        return {"Config": {"Labels": labels}}


def _tarball(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


@pytest.fixture
def server() -> FakeModelServer:
    return FakeModelServer()


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    (root / "sub").mkdir(parents=True)
    _tarball(root / "a.tar.gz", {"which.txt": b"model a"})
    _tarball(root / "b.tar.gz", {"which.txt": b"model b"})
    _tarball(root / "sub" / "c.tar.gz", {"which.txt": b"model c"})
    return root


class Clients:
    def __init__(self, url: str, backend: FakeBackend, models: Path) -> None:
        self.url = url
        self.backend = backend
        self.models = models
        config = Config(signature_version=UNSIGNED, retries={"total_max_attempts": 1})
        kwargs: dict[str, Any] = {"endpoint_url": url, "region_name": "us-east-1"}
        self.sm = boto3.client("sagemaker", config=config, **kwargs)
        self.rt = boto3.client("sagemaker-runtime", config=config, **kwargs)

    def deploy(
        self, name: str, image: str = "mme:1", cache: str = "Enabled", instances: int = 1
    ) -> None:
        container = {
            "Image": image,
            "Mode": "MultiModel",
            "ModelDataUrl": str(self.models),
            "MultiModelConfig": {"ModelCacheSetting": cache},
        }
        self.sm.create_model(ModelName=f"{name}-m", PrimaryContainer=container)
        self.sm.create_endpoint_config(
            EndpointConfigName=f"{name}-c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": f"{name}-m",
                    "InstanceType": "ml.m5.large",
                    "InitialInstanceCount": instances,
                }
            ],
        )
        self.sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-c")
        self.sm.get_waiter("endpoint_in_service").wait(EndpointName=name, WaiterConfig=WAIT)

    def invoke(self, name: str, target: str | None, body: bytes = b"hi") -> dict[str, Any]:
        extra = {"TargetModel": target} if target is not None else {}
        answer = self.rt.invoke_endpoint(
            EndpointName=name, Body=body, ContentType="text/plain", **extra
        )
        result: dict[str, Any] = json.loads(answer["Body"].read())
        return result

    def metric(self, prefix: str) -> int:
        with urllib.request.urlopen(f"{self.url}/metrics") as response:
            text = response.read().decode()
        return sum(int(line.split()[-1]) for line in text.splitlines() if line.startswith(prefix))


@pytest.fixture
def service(server: FakeModelServer, models: Path, tmp_path: Path) -> Iterator[Clients]:
    images = {
        "mme:1": FakeImage(handler=server),
        "plain:1": FakeImage(handler=server),
        "echo:1": FakeImage(handler=echo_handler),
    }
    backend = LabelledBackend(images)
    with service_in_background(backend, state=StateDir(tmp_path / "state"), settings=FAST) as url:
        yield Clients(url, backend, models)


def _error(call: Callable[[], object]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    status = int(response["ResponseMetadata"]["HTTPStatusCode"])
    return str(response["Error"]["Code"]), str(response["Error"].get("Message")), status


def test_each_target_model_is_fetched_loaded_once_and_answers(
    service: Clients, server: FakeModelServer
) -> None:
    service.deploy("mme")
    first = service.invoke("mme", "a.tar.gz")
    name_a, name_b = model_name_for("a.tar.gz"), model_name_for("b.tar.gz")
    assert first["model"] == name_a
    assert first["target"] == "a.tar.gz"  # the original TargetModel reaches the container
    assert first["url"] == f"/opt/ml/models/{name_a}/model"
    assert service.invoke("mme", "b.tar.gz")["model"] == name_b
    assert service.invoke("mme", "a.tar.gz")["model"] == name_a
    assert service.invoke("mme", "sub/c.tar.gz")["target"] == "sub/c.tar.gz"
    assert server.loads == [name_a, name_b, model_name_for("sub/c.tar.gz")]
    # The container's /opt/ml/models holds each model's files, read-only, as SageMaker's does.
    (container,) = service.backend.containers.values()
    run = container.run
    assert run.env["SAGEMAKER_MULTI_MODEL"] == "true"
    assert run.models_dir is not None and run.model_dir is None
    assert (run.models_dir / name_b / "model" / "which.txt").read_bytes() == b"model b"
    hits = 'smlocal_model_cache_hit_sum{endpoint="mme"'
    assert service.metric(hits) == 1
    assert service.metric('smlocal_model_cache_hit_count{endpoint="mme"') == 4
    assert service.metric('smlocal_loaded_model_count{endpoint="mme"') == 3
    assert service.metric('smlocal_model_loading_time_microseconds_count{endpoint="mme"') == 3
    assert service.metric('smlocal_model_downloading_time_microseconds_count{endpoint="mme"') == 3
    assert service.metric('smlocal_model_loading_wait_time_microseconds_count{endpoint="mme"') == 3


def test_507_unloads_the_least_recently_used_model(
    service: Clients, server: FakeModelServer
) -> None:
    server.limit = 1
    service.deploy("mme")
    for target in ("a.tar.gz", "b.tar.gz", "a.tar.gz", "b.tar.gz"):
        assert service.invoke("mme", target)["model"] == model_name_for(target)
    name_a, name_b = model_name_for("a.tar.gz"), model_name_for("b.tar.gz")
    assert server.unloads == [name_a, name_b, name_a]
    assert list(server.loaded) == [name_b]
    assert service.metric('smlocal_model_unloading_time_microseconds_count{endpoint="mme"') == 3
    # Nothing idle to unload: the 507 becomes a ModelError naming it.
    server.limit = 0
    code, message, status = _error(lambda: service.invoke("mme", "sub/c.tar.gz"))
    assert (code, status) == ("ModelError", 424)
    assert "507" in message and "sub/c.tar.gz" in message


def test_disabled_cache_unloads_after_each_request(
    service: Clients, server: FakeModelServer
) -> None:
    service.deploy("mme", cache="Disabled")
    service.invoke("mme", "a.tar.gz")
    service.invoke("mme", "a.tar.gz")
    name = model_name_for("a.tar.gz")
    assert server.loads == [name, name]
    assert server.unloads == [name, name]
    assert server.loaded == {}
    assert service.metric('smlocal_model_cache_hit_sum{endpoint="mme"') == 0


def test_update_endpoint_gives_the_new_fleet_its_own_models_directory(
    service: Clients, server: FakeModelServer
) -> None:
    service.deploy("mme")
    service.invoke("mme", "a.tar.gz")
    (blue,) = service.backend.containers.values()
    assert blue.run.models_dir is not None
    service.sm.create_endpoint_config(
        EndpointConfigName="mme-c2",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "mme-m", "InstanceType": "ml.m5.large"}
        ],
    )
    service.sm.update_endpoint(EndpointName="mme", EndpointConfigName="mme-c2")
    deadline = time.monotonic() + 20
    while blue.run.models_dir.exists():  # the old fleet's directory goes with it
        assert time.monotonic() < deadline
        time.sleep(0.05)
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="mme", WaiterConfig=WAIT)
    green = next(c for c in service.backend.containers.values() if c is not blue)
    assert green.run.models_dir != blue.run.models_dir
    # The fake's loaded set is shared by its "containers": the new one answers 409, which
    # counts as loaded, and its own directory got the files.
    assert service.invoke("mme", "a.tar.gz")["model"] == model_name_for("a.tar.gz")
    assert green.run.models_dir is not None
    assert (green.run.models_dir / model_name_for("a.tar.gz") / "model" / "which.txt").is_file()


def test_models_directories_a_killed_service_left_are_swept(
    service: Clients, tmp_path: Path
) -> None:
    gone = subprocess.run(["true"], check=True)
    del gone
    finished = subprocess.Popen(["true"])
    finished.wait()
    parent = StateDir(tmp_path / "state").cache / "multi-model"
    left = parent / f"old.pid{finished.pid}-1.0123456789ab" / "x" / "model"
    left.mkdir(parents=True)
    service.deploy("mme")
    assert not left.parent.parent.exists()
    (container,) = service.backend.containers.values()
    assert container.run.models_dir is not None
    assert container.run.models_dir.parent.parent == parent  # <root>/<variant>


def test_requests_go_to_an_instance_that_has_the_model(
    service: Clients, server: FakeModelServer
) -> None:
    service.deploy("mme", instances=2)
    for _ in range(4):
        service.invoke("mme", "a.tar.gz")
    # Round-robin alone would load it on the second instance too (the fake answers it 409).
    assert server.loads == [model_name_for("a.tar.gz")]
    assert service.metric('smlocal_model_cache_hit_sum{endpoint="mme"') == 3
    assert service.metric('smlocal_loaded_model_count{endpoint="mme"') == 1


def test_concurrent_first_requests_share_one_fetch_and_load(
    service: Clients, server: FakeModelServer
) -> None:
    server.load_delay_s = 0.5
    service.deploy("mme")
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: service.invoke("mme", "a.tar.gz"), range(6)))
    assert {a["model"] for a in answers} == {model_name_for("a.tar.gz")}
    assert server.loads == [model_name_for("a.tar.gz")]
    assert service.metric('smlocal_model_downloading_time_microseconds_count{endpoint="mme"') == 1


def test_a_slow_load_answers_model_not_ready_and_goes_on(
    service: Clients, server: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(multi_model, "MODEL_LOAD_WAIT_S", 0.2)
    server.load_delay_s = 1.0
    service.deploy("mme")
    code, message, status = _error(lambda: service.invoke("mme", "a.tar.gz"))
    assert (code, status) == ("ModelNotReadyException", 429)
    assert "a.tar.gz" in message
    deadline = time.monotonic() + 10
    while model_name_for("a.tar.gz") not in server.loaded:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    server.load_delay_s = 0.0
    assert service.invoke("mme", "a.tar.gz")["model"] == model_name_for("a.tar.gz")
    assert server.loads == [model_name_for("a.tar.gz")]


def test_errors_are_aws_shaped(service: Clients, server: FakeModelServer, models: Path) -> None:
    service.deploy("mme")
    code, message, status = _error(lambda: service.invoke("mme", "missing.tar.gz"))
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith(f"Failed to download model data({models}/missing.tar.gz)")
    code, message, status = _error(lambda: service.invoke("mme", None))
    assert (code, status) == ("ValidationError", 400)
    assert message.startswith("Request ") and message.endswith(" is missing a target model header.")
    code, message, _ = _error(lambda: service.invoke("mme", "../a.tar.gz"))
    assert code == "ValidationError" and "leaves the model's prefix" in message
    server.refuse.add(model_name_for("b.tar.gz"))
    code, message, status = _error(lambda: service.invoke("mme", "b.tar.gz"))
    assert (code, status) == ("ModelError", 424)
    assert "Failed to load model b.tar.gz" in message and "500" in message
    # A model that failed is tried again on the next request (nothing half-loaded is kept).
    server.refuse.clear()
    assert service.invoke("mme", "b.tar.gz")["model"] == model_name_for("b.tar.gz")


def test_target_model_on_a_single_model_endpoint_is_aws_validation_error(
    service: Clients,
) -> None:
    service.sm.create_model(ModelName="single-m", PrimaryContainer={"Image": "echo:1"})
    service.sm.create_endpoint_config(
        EndpointConfigName="single-c",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": "single-m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    service.sm.create_endpoint(EndpointName="single", EndpointConfigName="single-c")
    service.sm.get_waiter("endpoint_in_service").wait(EndpointName="single", WaiterConfig=WAIT)
    code, message, status = _error(
        lambda: service.rt.invoke_endpoint(
            EndpointName="single", Body=b"x", ContentType="text/plain", TargetModel="a.tar.gz"
        )
    )
    assert (code, status) == ("ValidationError", 400)
    assert message == (
        "Endpoint single is not a multi-model endpoint and does not support target model header."
    )


def test_create_model_refuses_an_image_without_the_capability_label(
    service: Clients,
) -> None:
    code, message, _ = _error(lambda: service.deploy("nolabel", image="plain:1"))
    assert code == "ValidationException"
    assert message == (
        "Your Ecr Image plain:1 does not contain required "
        "com.amazonaws.sagemaker.capabilities.multi-models=true Docker label(s)."
    )
    assert service.sm.list_models()["Models"] == []  # refused at CreateModel, as AWS does
    # An image the engine does not have yet is judged at CreateEndpoint instead.
    container = {"Image": "later:1", "Mode": "MultiModel", "ModelDataUrl": str(service.models)}
    service.sm.create_model(ModelName="later-m", PrimaryContainer=container)
    service.backend.images["later:1"] = FakeImage()
    service.sm.create_endpoint_config(
        EndpointConfigName="later-c",
        ProductionVariants=[
            {"VariantName": "AllTraffic", "ModelName": "later-m", "InstanceType": "ml.m5.large"}
        ],
    )
    code, message, _ = _error(
        lambda: service.sm.create_endpoint(EndpointName="later", EndpointConfigName="later-c")
    )
    assert code == "ValidationException" and "Your Ecr Image later:1" in message


# ---- the per-container cache alone ---------------------------------------------------
class ScriptedServer:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.loaded: list[str] = []
        self.calls: list[str] = []

    async def load(self, name: str, url: str) -> tuple[int, str]:
        self.calls.append(f"load {name}")
        await asyncio.sleep(0.01)
        if name in self.loaded:
            return 409, "already"
        if len(self.loaded) >= self.limit:
            return 507, "full"
        self.loaded.append(name)
        return 200, ""

    async def unload(self, name: str) -> tuple[int, str]:
        self.calls.append(f"unload {name}")
        self.loaded.remove(name)
        return 200, ""


async def _url() -> str:
    return "/opt/ml/models/x/model"


def test_cache_never_unloads_a_model_in_use_and_counts_409_as_loaded() -> None:
    async def scenario() -> None:
        server = ScriptedServer(limit=2)
        cache = InstanceModels(server)
        await cache.load("a", _url)
        await cache.load("b", _url)
        with cache.using("a"):  # a is older, but busy: b goes
            await cache.load("c", _url)
        assert cache.loaded == ["a", "c"]
        assert server.calls[-3:] == ["load c", "unload b", "load c"]
        # Nothing idle: the 507 is the caller's.
        with cache.using("a"), cache.using("c"), pytest.raises(ModelLoadError) as caught:
            await cache.load("d", _url)
        assert caught.value.out_of_memory and caught.value.status == 507
        cache.forget("a")  # the container said 404; it still has it: 409 = loaded
        await cache.load("a", _url)
        assert cache.is_loaded("a")
        # Many waiters, one load.
        server.calls.clear()
        await asyncio.gather(*(cache.load("e", _url) for _ in range(5)))
        assert server.calls.count("load e") == 2  # one 507, one success after an unload

    asyncio.run(scenario())
