"""`smlocal loadtest` on a real container: its report states the runtime API's and the
container's CPU, and --direct aims Locust at the container itself (issue 15)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.conftest import fixture_image
from tests.e2e.test_loadtest_cli import smlocal


@pytest.mark.docker
@pytest.mark.e2e
def test_the_report_carries_cpu_figures_with_and_without_direct(
    docker_images: None, tmp_path: Path
) -> None:
    payload = tmp_path / "payload.json"
    payload.write_bytes(b'{"x": 1}')
    summaries = {}
    for mode in ("through", "direct"):
        report = tmp_path / mode
        result = smlocal(
            "lt-cpu", "--image", fixture_image("echo"), "--payload", str(payload),
            "--users", "2", "--duration", "2", "--report", str(report),
            *(["--direct"] if mode == "direct" else []),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        summary = json.loads((report / "loadtest-summary.json").read_text())
        summaries[mode] = summary
        cpu = summary["cpu"]
        assert summary["totals"]["requests"] > 50 and summary["totals"]["failures"] == 0
        assert cpu["requests"] == summary["totals"]["requests"]
        assert cpu["containers"] == 1
        assert cpu["container_cpu_s"] > 0 and cpu["container_us_per_request"] > 0
        assert cpu["container_limit_cpus"] > 0  # ml.m5.large's vCPUs (at most the host's)
        assert 0 < cpu["machine_busy"] <= 1
        assert re.search(r"the container used \d+\.\d\d CPU-s/s = \d+% of its", result.stdout)
        if mode == "through":
            assert summary["direct"] is None
            assert cpu["runtime_api_cpu_s"] > 0 and cpu["runtime_api_us_per_request"] > 0
            assert re.search(
                r"runtime API \(smlocal\) used \d+\.\d\d CPU-s/s = \d+% of a core, \d+ µs per "
                "request",
                result.stdout,
            )
        else:
            (url,) = summary["direct"]["urls"]
            assert url.endswith("/invocations")
            assert "direct to the container: " + url in result.stdout
            assert "not in the path (--direct)" in result.stdout
    # Through the runtime API every request costs smlocal's process CPU; direct, it is idle.
    through, direct = summaries["through"]["cpu"], summaries["direct"]["cpu"]
    assert direct["runtime_api_us_per_request"] < through["runtime_api_us_per_request"]
