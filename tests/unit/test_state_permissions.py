"""Logs and records under SMLOCAL_HOME are the owner's only (issue 11, defect 10).

Container output, environments and tags land in ``logs/`` and ``service/``: folders 0700,
log files 0600, the state database 0600, also where an older smlocal left them readable.
"""

from __future__ import annotations

import stat
from pathlib import Path

from smlocal.emulator.endpoint import MonitorSettings
from smlocal.emulator.service.background import service_in_background
from smlocal.emulator.service.client import sagemaker_client, wait_until_settled
from smlocal.emulator.state import StateDir
from tests.unit.fakes import FakeBackend, FakeImage


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _serve_one(home: Path) -> None:
    backend = FakeBackend({"echo:1": FakeImage()})
    settings = MonitorSettings(ping_interval_s=0.2, stop_grace_s=1)
    with service_in_background(backend, state=StateDir(home), settings=settings) as url:
        client = sagemaker_client(url)
        client.create_model(ModelName="m", PrimaryContainer={"Image": "echo:1"})
        client.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[{"VariantName": "A", "ModelName": "m",
                                 "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
        )  # fmt: skip
        client.create_endpoint(EndpointName="private", EndpointConfigName="c")
        wait_until_settled(client, "private", lambda _s, _r: None, poll_s=0.05)


def test_a_fresh_home_holds_its_logs_and_records_for_the_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "fresh-home"
    _serve_one(home)
    assert _mode(home) == 0o700
    assert _mode(home / "logs") == 0o700
    assert _mode(home / "logs" / "private.log") == 0o600
    assert (home / "logs" / "private.log").read_text()  # the container's output is there
    assert _mode(home / "service") == 0o700
    assert _mode(home / "service" / "state.db") == 0o600


def test_what_an_older_smlocal_left_readable_is_restricted(tmp_path: Path) -> None:
    home = tmp_path / "shared"
    (home / "logs").mkdir(parents=True)
    (home / "service").mkdir()
    (home / "logs" / "private.log").write_text("old lines\n")
    for path in (home, home / "logs", home / "service"):
        path.chmod(0o755)
    (home / "logs" / "private.log").chmod(0o644)
    _serve_one(home)
    assert _mode(home) == 0o755  # a folder the user made keeps its mode
    assert _mode(home / "logs") == 0o700
    assert _mode(home / "logs" / "private.log") == 0o600
    assert _mode(home / "service") == 0o700


def test_the_contract_ledger_folder_is_private(tmp_path: Path) -> None:
    folder = StateDir(tmp_path / "home").private_dir("contracts", "passes")
    assert [_mode(p) for p in (folder.parent.parent, folder.parent, folder)] == [0o700] * 3
