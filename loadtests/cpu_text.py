"""The load-test report's CPU paragraph: plain figures, then one line of judgement.

Reads a :class:`~smlocal.loadtests.cpu.CpuUsage`; prints nothing (the CLI prints the lines).
The judgement names the likely limit only when the figures show one, most telling first:

1. through the runtime API, and it used most of a core: its event loop runs on one core, so
   it, not the container, caps the test (``--direct`` measures the container alone);
2. through the runtime API, the machine's cores saturated, and the runtime API took a real
   share of them: the emulator competes with the container for CPU;
3. the container at (or near) its CPU limit: the figures are the container's;
4. the machine saturated with the runtime API out of the way (``--direct``): Locust competes.
"""

from __future__ import annotations

from smlocal.loadtests.cpu import CpuUsage

__all__ = ["CORE_BOUND", "SATURATED", "cpu_lines", "judgement"]

# A single-threaded event loop at this share of a core has no headroom left.
CORE_BOUND = 0.85
# The machine's cores this busy (all processes) while requests flowed: no idle core left.
SATURATED = 0.90
# The runtime API's share of cores that makes it a real competitor on a saturated machine.
_COMPETES = 0.20
# A container using this share of its --cpus limit is at the limit (CFS throttles it).
_AT_LIMIT = 0.85


def _cores(value: float) -> str:
    return f"{value:.2f} CPU-s/s"


def _limit_text(usage: CpuUsage) -> str:
    limit, share = usage.container_limit_cpus, usage.container_share_of_limit
    if limit is None or share is None:
        return "no CPU limit known"
    whose = "its" if usage.containers == 1 else "their"
    return f"{share:.0%} of {whose} {limit:g} vCPU limit"


def _runtime_line(usage: CpuUsage, direct: bool, kind: str) -> str:
    cores, per_request = usage.runtime_api_cores, usage.runtime_api_us_per_request
    if cores is None:
        if kind == "aws":
            return "runtime API: AWS's own (not measured)"
        return "runtime API: not measured (its process is not known on this machine)"
    if direct:
        return (
            f"runtime API (smlocal): not in the path (--direct); {_cores(cores)} "
            "(health checks, log following)"
        )
    return (
        f"runtime API (smlocal) used {_cores(cores)} = {cores:.0%} of a core, "
        f"{per_request:.0f} µs per request"
    )


def _container_line(usage: CpuUsage) -> str:
    cores, per_request = usage.container_cores, usage.container_us_per_request
    if cores is None or per_request is None:
        return "container: not measured"
    who = "the container" if usage.containers == 1 else f"the {usage.containers} containers"
    return f"{who} used {_cores(cores)} = {_limit_text(usage)}, {per_request:.0f} µs per request"


def judgement(usage: CpuUsage, *, direct: bool) -> str | None:
    """The likely limit in one sentence, or None when the figures show none."""
    runtime = usage.runtime_api_cores
    busy = usage.machine_busy
    share = usage.container_share_of_limit
    saturated = busy is not None and busy >= SATURATED
    if not direct and runtime is not None and runtime >= CORE_BOUND:
        return (
            f"the runtime API (smlocal) is near a full core ({runtime:.0%}): it, not the "
            "container, is the likely limit of this test; run with --direct to measure the "
            "container alone, as SageMaker's front end would call it"
        )
    if not direct and saturated and runtime is not None and runtime >= _COMPETES:
        return (
            f"this machine's {usage.machine_cores} cores were {busy:.0%} busy and the runtime "
            f"API took {runtime:.2f} of them: the emulator competes with the container for "
            "CPU, so these figures understate the container; --direct measures it alone"
        )
    if share is not None and share >= _AT_LIMIT:
        return (
            f"the container is at its CPU limit ({share:.0%}): these figures are the "
            "container's own"
        )
    if saturated:
        return (
            f"this machine's {usage.machine_cores} cores were {busy:.0%} busy: Locust competes "
            "with the container for CPU, so these figures are a floor; run Locust on other "
            "machines for more (loadtests/README.md, More load)"
        )
    return None


def cpu_lines(usage: CpuUsage, *, direct: bool, kind: str) -> list[str]:
    """The report's CPU paragraph (plain text, one figure per line)."""
    lines = [
        f"CPU while requests flowed ({usage.active_s:.1f} s, {usage.requests} requests):",
        "  " + _runtime_line(usage, direct, kind),
        "  " + _container_line(usage),
    ]
    if usage.machine_busy is not None:
        lines.append(f"  machine: {usage.machine_cores} cores, {usage.machine_busy:.0%} busy")
    verdict = judgement(usage, direct=direct)
    if verdict is not None:
        lines.append(f"  likely limit: {verdict}")
    return lines
