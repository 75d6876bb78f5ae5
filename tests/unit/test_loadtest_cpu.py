"""A load test's CPU accounting and its report text, on a fake /proc and fake containers."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from smlocal.loadtests.cpu import CpuProbe, CpuUsage, machine_jiffies, thread_cpu_s
from smlocal.loadtests.cpu_text import cpu_lines, judgement
from smlocal.loadtests.report import RunInfo, write_summary
from smlocal.loadtests.stats import StepStats

TICK = os.sysconf("SC_CLK_TCK")


class FakeProc:
    """/proc/PID/stat, /proc/PID/task/TID/stat and /proc/stat, set in seconds / jiffies."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def set_cpu(self, pid: int, user_s: float, system_s: float, tid: int | None = None) -> None:
        where = self.root / str(pid) if tid is None else self.root / str(pid) / "task" / str(tid)
        where.mkdir(parents=True, exist_ok=True)
        # The command name may hold spaces and parentheses: the fields count after the last ")".
        fields = ["S"] + ["0"] * 10 + [str(round(user_s * TICK)), str(round(system_s * TICK))]
        (where / "stat").write_text(f"{pid} (python (x) y) " + " ".join(fields) + " 0 0 20\n")

    def set_machine(self, busy: int, idle: int) -> None:
        # user nice system idle iowait irq softirq steal guest guest_nice
        line = f"cpu  {busy} 0 0 {idle} 0 0 0 0 0 0"
        (self.root / "stat").write_text(f"{line}\ncpu0 1 0 0 1 0 0 0 0 0 0\nintr 1\n")


class FakeContainers:
    def __init__(self, limits: dict[str, float | None]) -> None:
        self.limits = limits
        self.used: dict[str, float] = dict.fromkeys(limits, 0.0)

    def cpu_seconds(self, container_id: str) -> float:
        if container_id not in self.used:
            raise KeyError(container_id)  # gone
        return self.used[container_id]

    def cpu_limit(self, container_id: str) -> float | None:
        return self.limits[container_id]


class Clock:
    now = 100.0

    def __call__(self) -> float:
        return self.now


def _probe(proc: FakeProc, containers: FakeContainers, **kwargs: object) -> CpuProbe:
    return CpuProbe(
        runtime_pid=4242,
        containers=list(containers.limits),
        reader=containers,
        proc=proc.root,
        cores=2,
        **kwargs,  # type: ignore[arg-type]
    )


def test_stat_files_parse_past_a_command_name_with_parentheses(tmp_path: Path) -> None:
    proc = FakeProc(tmp_path)
    proc.set_cpu(7, 1.5, 0.25)
    proc.set_machine(busy=300, idle=700)
    assert thread_cpu_s(7, proc=tmp_path) == pytest.approx(1.75)
    assert machine_jiffies(proc=tmp_path) == (300, 1000)


def test_own_process_and_thread_are_readable_for_real() -> None:
    total = thread_cpu_s(os.getpid())
    mine = thread_cpu_s(os.getpid(), threading.get_native_id())
    assert 0 <= mine <= total


def test_a_window_measures_only_its_own_step(tmp_path: Path) -> None:
    proc, clock = FakeProc(tmp_path), Clock()
    containers = FakeContainers({"c1": 1.0})
    proc.set_cpu(4242, 10.0, 2.0)  # CPU before the step does not count
    proc.set_machine(busy=1000, idle=1000)
    containers.used["c1"] = 50.0
    window = _probe(proc, containers, clock=clock).start()
    proc.set_machine(busy=1100, idle=1100)  # Locust starting: busy, but not yet load
    window.mark_active()
    clock.now += 10.0
    proc.set_cpu(4242, 10.0 + 3.0, 2.0 + 1.0)  # 4 CPU-s over the step
    proc.set_machine(busy=1100 + 190, idle=1100 + 10)  # 95% busy while requests flowed
    containers.used["c1"] = 50.0 + 9.0
    usage = window.finish(requests=10_000, rps=1_000.0)
    assert usage.active_s == pytest.approx(10.0)
    assert usage.runtime_api_cpu_s == pytest.approx(4.0)
    assert usage.runtime_api_cores == pytest.approx(0.4)
    assert usage.runtime_api_us_per_request == pytest.approx(400.0)
    assert usage.container_cpu_s == pytest.approx(9.0)
    assert usage.container_share_of_limit == pytest.approx(0.9)
    assert usage.container_us_per_request == pytest.approx(900.0)
    assert usage.machine_busy == pytest.approx(0.95)


def test_rates_are_over_the_time_requests_flowed_not_locust_start_up(tmp_path: Path) -> None:
    proc, clock = FakeProc(tmp_path), Clock()
    proc.set_cpu(4242, 0.0, 0.0)
    proc.set_machine(busy=0, idle=10)
    window = _probe(proc, FakeContainers({}), clock=clock).start()
    clock.now += 13.0  # 3 s of Locust starting and stopping around 10 s of requests
    proc.set_cpu(4242, 5.0, 0.0)
    usage = window.finish(requests=2_000, rps=200.0)
    assert usage.active_s == pytest.approx(10.0)
    assert usage.runtime_api_cores == pytest.approx(0.5)
    assert usage.container_cpu_s is None and usage.containers == 0


def test_the_callers_thread_is_not_the_runtime_apis(tmp_path: Path) -> None:
    """In-process (--image): the process's CPU less the CLI thread's, which polls Locust."""
    proc, clock = FakeProc(tmp_path), Clock()
    proc.set_cpu(4242, 1.0, 0.0)
    proc.set_cpu(4242, 0.5, 0.0, tid=4242)
    proc.set_machine(busy=0, idle=10)
    window = _probe(proc, FakeContainers({}), clock=clock, shared_tid=4242).start()
    clock.now += 4.0
    proc.set_cpu(4242, 4.0, 0.0)  # +3 s in all, of which the CLI thread +1 s
    proc.set_cpu(4242, 1.5, 0.0, tid=4242)
    assert window.finish(requests=100, rps=25.0).runtime_api_cpu_s == pytest.approx(2.0)


def test_a_container_gone_mid_step_is_left_out_and_limits_add_up(tmp_path: Path) -> None:
    proc, clock = FakeProc(tmp_path), Clock()
    proc.set_machine(busy=0, idle=10)
    containers = FakeContainers({"a": 1.0, "b": 1.0, "c": 2.0})
    window = _probe(proc, containers, clock=clock).start()
    clock.now += 5.0
    containers.used.update(a=2.0, b=3.0)
    del containers.used["c"]
    usage = window.finish(requests=500, rps=100.0)
    assert usage.containers == 2
    assert usage.container_cpu_s == pytest.approx(5.0)
    assert usage.container_limit_cpus == pytest.approx(2.0)  # a and b only
    assert usage.container_share_of_limit == pytest.approx(0.5)


def test_an_unlimited_container_has_no_share_and_a_gone_runtime_no_figure(
    tmp_path: Path,
) -> None:
    proc, clock = FakeProc(tmp_path), Clock()
    proc.set_machine(busy=0, idle=10)
    containers = FakeContainers({"a": None})
    probe = CpuProbe(
        runtime_pid=999_999, containers=["a"], reader=containers, proc=tmp_path, clock=clock
    )
    window = probe.start()
    clock.now += 1.0
    containers.used["a"] = 0.5
    usage = window.finish(requests=10, rps=10.0)
    assert usage.runtime_api_cpu_s is None
    assert usage.container_limit_cpus is None and usage.container_share_of_limit is None
    assert "no CPU limit known" in cpu_lines(usage, direct=False, kind="local")[2]
    assert "not measured" in cpu_lines(usage, direct=False, kind="local")[1]


def usage(
    runtime: float | None, container: float | None, busy: float | None, *, limit: float = 1.0
) -> CpuUsage:
    """A 10 s step of 10,000 requests using ``runtime`` and ``container`` cores."""
    return CpuUsage(
        requests=10_000,
        active_s=10.0,
        runtime_api_cpu_s=runtime * 10 if runtime is not None else None,
        containers=1 if container is not None else 0,
        container_cpu_s=container * 10 if container is not None else None,
        container_limit_cpus=limit if container is not None else None,
        machine_cores=2,
        machine_busy=busy,
    )


def test_report_text_states_the_figures_plainly() -> None:
    lines = cpu_lines(usage(0.41, 0.95, 0.7), direct=False, kind="image")
    assert lines == [
        "CPU while requests flowed (10.0 s, 10000 requests):",
        "  runtime API (smlocal) used 0.41 CPU-s/s = 41% of a core, 410 µs per request",
        "  the container used 0.95 CPU-s/s = 95% of its 1 vCPU limit, 950 µs per request",
        "  machine: 2 cores, 70% busy",
        "  likely limit: the container is at its CPU limit (95%): these figures are the "
        "container's own",
    ]


def test_direct_and_aws_say_where_the_runtime_api_was() -> None:
    direct = cpu_lines(usage(0.01, 0.5, 0.5), direct=True, kind="image")
    assert direct[1] == (
        "  runtime API (smlocal): not in the path (--direct); 0.01 CPU-s/s "
        "(health checks, log following)"
    )
    aws = cpu_lines(usage(None, None, None), direct=False, kind="aws")
    assert aws[1:] == ["  runtime API: AWS's own (not measured)", "  container: not measured"]


@pytest.mark.parametrize(
    ("runtime", "container", "busy", "direct", "verdict"),
    [
        (0.9, 0.3, 0.6, False, "the runtime API (smlocal) is near a full core (90%)"),
        (0.3, 0.5, 0.95, False, "this machine's 2 cores were 95% busy and the runtime API took"),
        (0.1, 0.5, 0.95, False, "Locust competes with the container"),  # smlocal took little
        (0.3, 0.9, 0.5, False, "the container is at its CPU limit (90%)"),
        (0.9, 0.3, 0.95, True, "Locust competes"),  # --direct: the runtime API is not it
        (0.3, 0.3, 0.5, False, None),  # nothing CPU-bound: no verdict
    ],
)
def test_judgement_names_the_likely_limit(
    runtime: float, container: float, busy: float, direct: bool, verdict: str | None
) -> None:
    said = judgement(usage(runtime, container, busy), direct=direct)
    if verdict is None:
        assert said is None
    else:
        assert said is not None and verdict in said
    if said and not direct and "runtime API" in said:
        assert "--direct" in said  # the way to measure the container alone


def test_the_summary_carries_cpu_and_the_direct_marker(tmp_path: Path) -> None:
    step = StepStats(4, 10_000, 0, 1000.0, 1.0, 2.0, 3.0, 1.2, csv_prefix=str(tmp_path / "s/01"))
    info = RunInfo("ep", "image", "http://127.0.0.1:1", "fixed", "ml.m5.large", 1, 0,
                   direct_urls=("http://10.0.0.2:8080/invocations",))  # fmt: skip
    measured = usage(0.4, 0.9, 0.8)
    path = write_summary(
        tmp_path, info, [step], advice=None, find_max=None, generator_cpu_warning=False,
        files={}, cpu=[measured], shown_cpu=measured,
    )  # fmt: skip
    summary = json.loads(path.read_text())
    assert summary["direct"] == {"urls": ["http://10.0.0.2:8080/invocations"]}
    assert summary["target"] == {"kind": "image", "url": "http://127.0.0.1:1", "variant": None}
    assert summary["cpu"] == summary["steps"][0]["cpu"]
    assert summary["cpu"]["runtime_api_us_per_request"] == 400.0
    assert summary["cpu"]["container_cores"] == 0.9
    assert summary["cpu"]["container_share_of_limit"] == 0.9
    assert summary["cpu"]["machine_busy"] == 0.8
    through = write_summary(
        tmp_path, RunInfo("ep", "aws", "u", "fixed", "ml.m5.large", 1, 0), [step], advice=None,
        find_max=None, generator_cpu_warning=False, files={},
    )  # fmt: skip
    plain = json.loads(through.read_text())
    assert plain["direct"] is None and plain["cpu"] is None and plain["steps"][0]["cpu"] is None
