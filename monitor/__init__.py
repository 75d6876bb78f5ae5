"""Model Monitor-compatible data monitoring: baselines, violations, alerts and metrics.

Public API (the ``smlocal monitor`` commands are a thin layer over it):

* :func:`run_baseline` — a dataset's ``statistics.json`` and ``constraints.json`` in the
  schema of SageMaker's ``sagemaker-model-monitor-analyzer``.
* :func:`run_monitor` with :class:`MonitorRun` and :class:`CaptureWindow` — one monitoring
  execution over captured traffic: the window's statistics, ``constraint_violations.json``,
  a PNG per drifting feature, optional SNS alert and CloudWatch metrics.
* :class:`MonitorInputError` — the inputs cannot be used (exit 2).

Modules by job: ``table`` (datasets as columns), ``profile`` (types, statistics, KLL),
``files`` (the three JSON files), ``baseline``, ``sources`` (capture files in a directory or
S3), ``capture`` (records of a window), ``checks`` (the six checks and the drift distances),
``report`` (PNGs), ``alerts`` (SNS, CloudWatch), ``run``, ``schedule`` (hourly rounds).
Monitoring reads capture files; it imports the emulator's core only, never its service, and
nothing of contracts, load tests or promote.
"""

if __name__ != "smlocal.monitor":  # reached as the checkout's bare top-level folder
    raise ImportError(
        f"import smlocal.monitor, not {__name__}: monitor/ is installed as smlocal.monitor"
    )

from smlocal.monitor.baseline import BaselineResult, run_baseline
from smlocal.monitor.capture import CaptureWindow, parse_time
from smlocal.monitor.errors import MonitorInputError
from smlocal.monitor.run import MonitorRun, RunResult, run_monitor

__all__ = [
    "BaselineResult",
    "CaptureWindow",
    "MonitorInputError",
    "MonitorRun",
    "RunResult",
    "parse_time",
    "run_baseline",
    "run_monitor",
]
