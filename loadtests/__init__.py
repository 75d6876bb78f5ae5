"""Load tests for SageMaker endpoints with Locust: local or real, max RPS, autoscaling advice.

Public API (the ``smlocal loadtest`` command is a thin wrapper around it):

- :func:`run_loadtest` with :class:`LoadTestOptions` and a :class:`LocustTarget` — one run,
  fixed load or ``find_max`` (:class:`FindMaxSettings`), writing the report directory;
- :func:`advise` — AWS's target-tracking rule applied to a MAX_RPS;
- :func:`load_payloads`, :func:`classify` — payload files and error kinds.

Modules: ``locustfile`` (the Locust user), ``runner`` (Locust processes), ``stats`` (Locust's
CSV), ``findmax``, ``advice``, ``pricing``, ``report``, ``live``, ``target``, ``session``,
``fleet`` (an endpoint's containers, ``--direct``), ``cpu`` and ``cpu_text`` (CPU accounting).
Benchmarks that need a checkout live in the repository's ``benchmarks/`` folder, not here.
Importing this package does not import Locust (it monkey-patches with gevent).
"""

if __name__ != "smlocal.loadtests":  # reached as the checkout's bare top-level folder
    raise ImportError(
        f"import smlocal.loadtests, not {__name__}: loadtests/ is installed as smlocal.loadtests"
    )

from smlocal.loadtests.advice import ScalingAdvice, advise
from smlocal.loadtests.errors import classify
from smlocal.loadtests.findmax import FindMaxResult, FindMaxSettings
from smlocal.loadtests.payloads import Payload, load_payloads
from smlocal.loadtests.report import RunInfo
from smlocal.loadtests.runner import LocustTarget
from smlocal.loadtests.session import LoadTestOptions, LoadTestOutcome, run_loadtest

__all__ = [
    "FindMaxResult",
    "FindMaxSettings",
    "LoadTestOptions",
    "LoadTestOutcome",
    "LocustTarget",
    "Payload",
    "RunInfo",
    "ScalingAdvice",
    "advise",
    "classify",
    "load_payloads",
    "run_loadtest",
]
