"""Benchmark: what one ``GET /metrics`` scrape and one recorded request cost, full windows.

Prints, in ONE run (same-run figures only; these machines are noisy), for endpoints of 1, 3
and 10 variants whose ModelLatency and OverheadLatency windows hold a full 10k samples
(log-normal latencies, so no two sorts are alike):

1. ms per ``EndpointMetrics.prometheus()`` (what ``/metrics`` calls on the event loop) with a
   new request recorded on every variant between scrapes (no cached sort survives: the worst
   case under load), for the current code and for the algorithm before issue 15 (a deque and
   six ``statistics.quantiles`` over it per variant), interleaved in rounds; and the current
   code's scrape when nothing changed in between (the cached sort);
2. µs per ``VariantMetrics.record()`` (the request hot path) on full windows, old and new,
   loop overhead included for both.

Goals (issue 15): <= 1 ms per scrape however full the windows are; record() stays ~1-2 µs.

Run: .venv/bin/python benchmarks/metrics_scrape.py [--rounds 15] [--records 200000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections import deque
from collections.abc import Callable

from smlocal.emulator.metrics import EndpointMetrics, LatencyWindow, VariantMetrics

FULL = 10_000


class OldWindow(LatencyWindow):
    """LatencyWindow before issue 15: a deque, ``statistics.quantiles`` on every quantile."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recent: deque[int] = deque(maxlen=self.capacity)

    def add(self, microseconds: int) -> None:
        self.count += 1
        self.total_us += microseconds
        self.recent.append(microseconds)

    def quantile(self, q: float) -> float:
        if not self.recent:
            return 0.0
        if len(self.recent) == 1:
            return float(self.recent[0])
        cuts = statistics.quantiles(self.recent, n=1000, method="inclusive")
        return cuts[min(len(cuts) - 1, max(0, round(q * 1000) - 1))]


def _old_variant() -> VariantMetrics:
    return VariantMetrics(model_latency=OldWindow(), overhead_latency=OldWindow())


def _latencies(rng: random.Random, count: int) -> list[tuple[int, int]]:
    """(model_us, total_us) pairs: ~2 ms model time, ~300 µs overhead, long tails."""
    pairs = []
    for _ in range(count):
        model_us = int(rng.lognormvariate(7.6, 0.6))
        pairs.append((model_us, model_us + int(rng.lognormvariate(5.7, 0.4))))
    return pairs


def _endpoint(variants: int, make: Callable[[], VariantMetrics], seed: int) -> EndpointMetrics:
    endpoint = EndpointMetrics("bench")
    rng = random.Random(seed)  # noqa: S311 (benchmark data, not secrets)
    for index in range(variants):
        values = endpoint.variants[f"variant-{index}"] = make()
        for model_us, total_us in _latencies(rng, FULL + 1_234):  # full and wrapped
            values.record(status=200, model_us=model_us, total_us=total_us)
    return endpoint


def _scrape_ms(endpoint: EndpointMetrics, rng: random.Random, *, dirty: bool) -> float:
    if dirty:  # one new request per variant: every window must be sorted again
        for values in endpoint.variants.values():
            model_us, total_us = _latencies(rng, 1)[0]
            values.record(status=200, model_us=model_us, total_us=total_us)
    started = time.perf_counter()
    endpoint.prometheus()
    return (time.perf_counter() - started) * 1e3


def _scrapes(rounds: int) -> None:
    print("1. ms per /metrics scrape, full windows (median of rounds; old and new interleaved)")
    print(
        f"   {'variants':>8}  {'old':>9}  {'new':>8}  {'new, unchanged':>14}  {'speed-up':>8}  goal"
    )
    rng = random.Random(1)  # noqa: S311 (benchmark data, not secrets)
    for variants in (1, 3, 10):
        old = _endpoint(variants, _old_variant, seed=variants)
        new = _endpoint(variants, VariantMetrics, seed=variants)
        assert old.prometheus() == new.prometheus()  # same state, same text
        old_ms, new_ms, cached_ms = [], [], []
        for _ in range(rounds):
            old_ms.append(_scrape_ms(old, rng, dirty=True))
            new_ms.append(_scrape_ms(new, rng, dirty=True))
            cached_ms.append(_scrape_ms(new, rng, dirty=False))
        o, n, c = (statistics.median(t) for t in (old_ms, new_ms, cached_ms))
        verdict = "met" if max(new_ms) <= 1.0 else f"NOT met (worst {max(new_ms):.2f} ms)"
        figures = f"{variants:>8}  {o:>9.2f}  {n:>8.3f}  {c:>14.3f}  {o / n:>7.0f}x"
        print(f"   {figures}  <= 1 ms: {verdict}")


def _record_us(values: VariantMetrics, pairs: list[tuple[int, int]]) -> float:
    record = values.record
    started = time.perf_counter()
    for model_us, total_us in pairs:
        record(status=200, model_us=model_us, total_us=total_us)
    return (time.perf_counter() - started) / len(pairs) * 1e6


def _records(count: int, rounds: int) -> None:
    print("2. µs per VariantMetrics.record(), full windows (median of rounds; loop included)")
    pairs = _latencies(random.Random(2), count)  # noqa: S311 (benchmark data, not secrets)
    old = _endpoint(1, _old_variant, seed=3).variants["variant-0"]
    new = _endpoint(1, VariantMetrics, seed=3).variants["variant-0"]
    old_us, new_us = [], []
    for _ in range(rounds):
        old_us.append(_record_us(old, pairs))
        new_us.append(_record_us(new, pairs))
    o, n = statistics.median(old_us), statistics.median(new_us)
    print(f"   old {o:.3f} µs   new {n:.3f} µs   (+{(n - o) * 1e3:.0f} ns a request)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15, help="scrapes per variant count")
    parser.add_argument("--records", type=int, default=200_000, help="record() calls a round")
    args = parser.parse_args()
    _scrapes(args.rounds)
    _records(args.records, max(3, args.rounds // 3))


if __name__ == "__main__":
    main()
