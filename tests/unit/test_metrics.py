"""Latency windows: the quantiles ``GET /metrics`` reports are the ones it reported before.

The window keeps its recent samples in a numpy ring and sorts it once per scrape (issue 15);
these tests pin that every quantile is bit for bit ``statistics.quantiles(window, n=1000,
method="inclusive")``'s cut, the old algorithm, on Hypothesis-generated windows (short and
full, wrapped around or not, with scrapes between adds), and that the Prometheus text of a
fixed state is the text the old code wrote (the literal below was rendered by it).
"""

from __future__ import annotations

import random
import statistics
from collections import deque
from collections.abc import Callable, Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from smlocal.emulator.metrics import EndpointMetrics, LatencyWindow

QUANTILES = (0.0, 0.001, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0)


def old_quantile(recent: Sequence[int], q: float) -> float:
    """LatencyWindow.quantile before issue 15, verbatim."""
    if not recent:
        return 0.0
    if len(recent) == 1:
        return float(recent[0])
    cuts = statistics.quantiles(recent, n=1000, method="inclusive")
    return cuts[min(len(cuts) - 1, max(0, round(q * 1000) - 1))]


def assert_same_quantiles(window: LatencyWindow, recent: Sequence[int]) -> None:
    for q in QUANTILES:
        assert window.quantile(q) == old_quantile(recent, q), q


# Beyond int32 both ways too: the ring starts narrow and widens on the first such sample.
samples = st.integers(min_value=-(2**40), max_value=2**40)


@given(
    capacity=st.integers(min_value=1, max_value=40),
    values=st.lists(samples, max_size=200),
)
def test_quantiles_equal_statistics_on_small_windows_wrapped_or_not(
    capacity: int, values: list[int]
) -> None:
    window = LatencyWindow(capacity=capacity)
    for value in values:
        window.add(value)
    assert_same_quantiles(window, values[-capacity:])
    assert window.count == len(values)
    assert window.total_us == sum(values)


@given(
    capacity=st.integers(min_value=1, max_value=30),
    steps=st.lists(st.one_of(samples, st.none()), max_size=150),
)
def test_a_scrape_between_adds_never_reads_a_stale_sort(
    capacity: int, steps: list[int | None]
) -> None:
    """``None`` is a scrape; the sorted copy it leaves must not survive the next add."""
    window = LatencyWindow(capacity=capacity)
    recent: deque[int] = deque(maxlen=capacity)
    for step in steps:
        if step is None:
            assert_same_quantiles(window, recent)
        else:
            window.add(step)
            recent.append(step)
    assert_same_quantiles(window, recent)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    extra=st.sampled_from([0, 1, 2, 999, 4_321, 10_000, 13_579]),
    spread=st.sampled_from([1, 50, 5_000, 60_000_000]),
    scrapes=st.lists(st.integers(min_value=0, max_value=24_000), max_size=3),
)
def test_quantiles_equal_statistics_on_full_10k_windows(
    seed: int, extra: int, spread: int, scrapes: list[int]
) -> None:
    """The real window size, full and wrapped by ``extra`` samples; ties when spread is small."""
    rng = random.Random(seed)
    window = LatencyWindow()
    assert window.capacity == 10_000
    values = [rng.randrange(spread) + 100 for _ in range(10_000 + extra)]
    for i, value in enumerate(values):
        window.add(value)
        if i in scrapes:
            window.quantile(0.5)  # leaves a sorted copy the next add must drop
    assert_same_quantiles(window, values[-10_000:])


def test_a_sample_beyond_int32_widens_the_ring_and_keeps_the_others() -> None:
    window = LatencyWindow(capacity=4)
    for value in (7, 3, 5):
        window.add(value)
    assert window.quantile(0.5) == 5.0  # a sorted copy of the narrow ring is cached
    window.add(2**31)
    assert_same_quantiles(window, [7, 3, 5, 2**31])
    window.add(-(2**40))
    assert_same_quantiles(window, [3, 5, 2**31, -(2**40)])
    assert window.total_us == 15 + 2**31 - 2**40


def test_an_empty_window_and_a_single_sample() -> None:
    window = LatencyWindow()
    assert [window.quantile(q) for q in QUANTILES] == [0.0] * len(QUANTILES)
    window.add(1234)
    assert [window.quantile(q) for q in QUANTILES] == [1234.0] * len(QUANTILES)


def fill(scrape: Callable[[EndpointMetrics], object]) -> EndpointMetrics:
    """Four variants: empty, a few answers of every kind, a wrapped 10k window, one sample."""
    endpoint = EndpointMetrics("shop")
    endpoint.variant("D")  # registered, never invoked: empty windows
    b = endpoint.variant("B")
    answers = [(200, 510, 730), (200, 480, 700), (404, 120, 260), (500, 9000, 9100),
               (None, 60_000_000, 60_000_400), (200, 505, 505), (200, 499, 1200)]  # fmt: skip
    for i, (status, model_us, total_us) in enumerate(answers):
        b.record(status=status, model_us=model_us, total_us=total_us)
        if i == 2:
            scrape(endpoint)
    a = endpoint.variant("A")
    for i in range(10_250):  # wraps the 10k window
        model_us = (i * 7919) % 4099 + 100
        a.record(status=200, model_us=model_us, total_us=model_us + (i * 31) % 97)
    scrape(endpoint)
    endpoint.variant("C").record(status=200, model_us=42, total_us=50)
    endpoint.rejected = 3
    return endpoint


def test_the_prometheus_text_is_the_one_the_old_code_wrote() -> None:
    """Scrapes in between (cached sorts) change nothing; the literal is the old code's output."""
    assert fill(lambda e: e.prometheus()).prometheus() == OLD_TEXT
    assert fill(lambda e: None).prometheus() == OLD_TEXT


OLD_TEXT = """\
# HELP smlocal_invocations_total Invocations: requests that reached a container
# TYPE smlocal_invocations_total counter
smlocal_invocations_total{endpoint="shop",variant="A"} 10250
smlocal_invocations_total{endpoint="shop",variant="B"} 7
smlocal_invocations_total{endpoint="shop",variant="C"} 1
smlocal_invocations_total{endpoint="shop",variant="D"} 0
# HELP smlocal_invocation_4xx_errors_total Invocation4XXErrors: container answered 4xx
# TYPE smlocal_invocation_4xx_errors_total counter
smlocal_invocation_4xx_errors_total{endpoint="shop",variant="A"} 0
smlocal_invocation_4xx_errors_total{endpoint="shop",variant="B"} 1
smlocal_invocation_4xx_errors_total{endpoint="shop",variant="C"} 0
smlocal_invocation_4xx_errors_total{endpoint="shop",variant="D"} 0
# HELP smlocal_invocation_5xx_errors_total Invocation5XXErrors: container answered 5xx or not at all
# TYPE smlocal_invocation_5xx_errors_total counter
smlocal_invocation_5xx_errors_total{endpoint="shop",variant="A"} 0
smlocal_invocation_5xx_errors_total{endpoint="shop",variant="B"} 2
smlocal_invocation_5xx_errors_total{endpoint="shop",variant="C"} 0
smlocal_invocation_5xx_errors_total{endpoint="shop",variant="D"} 0
# HELP smlocal_model_errors_total InvocationModelErrors: requests answered with ModelError
# TYPE smlocal_model_errors_total counter
smlocal_model_errors_total{endpoint="shop",variant="A"} 0
smlocal_model_errors_total{endpoint="shop",variant="B"} 3
smlocal_model_errors_total{endpoint="shop",variant="C"} 0
smlocal_model_errors_total{endpoint="shop",variant="D"} 0
# HELP smlocal_model_latency_microseconds ModelLatency in microseconds
# TYPE smlocal_model_latency_microseconds summary
smlocal_model_latency_microseconds{endpoint="shop",variant="A",quantile="0.5"} 2150
smlocal_model_latency_microseconds{endpoint="shop",variant="A",quantile="0.9"} 3788
smlocal_model_latency_microseconds{endpoint="shop",variant="A",quantile="0.99"} 4157
smlocal_model_latency_microseconds_sum{endpoint="shop",variant="A"} 22029290
smlocal_model_latency_microseconds_count{endpoint="shop",variant="A"} 10250
smlocal_model_latency_microseconds{endpoint="shop",variant="B",quantile="0.5"} 505
smlocal_model_latency_microseconds{endpoint="shop",variant="B",quantile="0.9"} 24005400
smlocal_model_latency_microseconds{endpoint="shop",variant="B",quantile="0.99"} 56400540
smlocal_model_latency_microseconds_sum{endpoint="shop",variant="B"} 60011114
smlocal_model_latency_microseconds_count{endpoint="shop",variant="B"} 7
smlocal_model_latency_microseconds{endpoint="shop",variant="C",quantile="0.5"} 42
smlocal_model_latency_microseconds{endpoint="shop",variant="C",quantile="0.9"} 42
smlocal_model_latency_microseconds{endpoint="shop",variant="C",quantile="0.99"} 42
smlocal_model_latency_microseconds_sum{endpoint="shop",variant="C"} 42
smlocal_model_latency_microseconds_count{endpoint="shop",variant="C"} 1
smlocal_model_latency_microseconds{endpoint="shop",variant="D",quantile="0.5"} 0
smlocal_model_latency_microseconds{endpoint="shop",variant="D",quantile="0.9"} 0
smlocal_model_latency_microseconds{endpoint="shop",variant="D",quantile="0.99"} 0
smlocal_model_latency_microseconds_sum{endpoint="shop",variant="D"} 0
smlocal_model_latency_microseconds_count{endpoint="shop",variant="D"} 0
# HELP smlocal_overhead_latency_microseconds OverheadLatency in microseconds
# TYPE smlocal_overhead_latency_microseconds summary
smlocal_overhead_latency_microseconds{endpoint="shop",variant="A",quantile="0.5"} 48
smlocal_overhead_latency_microseconds{endpoint="shop",variant="A",quantile="0.9"} 87
smlocal_overhead_latency_microseconds{endpoint="shop",variant="A",quantile="0.99"} 96
smlocal_overhead_latency_microseconds_sum{endpoint="shop",variant="A"} 492056
smlocal_overhead_latency_microseconds_count{endpoint="shop",variant="A"} 10250
smlocal_overhead_latency_microseconds{endpoint="shop",variant="B",quantile="0.5"} 220
smlocal_overhead_latency_microseconds{endpoint="shop",variant="B",quantile="0.9"} 520
smlocal_overhead_latency_microseconds{endpoint="shop",variant="B",quantile="0.99"} 683
smlocal_overhead_latency_microseconds_sum{endpoint="shop",variant="B"} 1781
smlocal_overhead_latency_microseconds_count{endpoint="shop",variant="B"} 7
smlocal_overhead_latency_microseconds{endpoint="shop",variant="C",quantile="0.5"} 8
smlocal_overhead_latency_microseconds{endpoint="shop",variant="C",quantile="0.9"} 8
smlocal_overhead_latency_microseconds{endpoint="shop",variant="C",quantile="0.99"} 8
smlocal_overhead_latency_microseconds_sum{endpoint="shop",variant="C"} 8
smlocal_overhead_latency_microseconds_count{endpoint="shop",variant="C"} 1
smlocal_overhead_latency_microseconds{endpoint="shop",variant="D",quantile="0.5"} 0
smlocal_overhead_latency_microseconds{endpoint="shop",variant="D",quantile="0.9"} 0
smlocal_overhead_latency_microseconds{endpoint="shop",variant="D",quantile="0.99"} 0
smlocal_overhead_latency_microseconds_sum{endpoint="shop",variant="D"} 0
smlocal_overhead_latency_microseconds_count{endpoint="shop",variant="D"} 0
# HELP smlocal_rejected_requests_total requests refused before reaching a container
# TYPE smlocal_rejected_requests_total counter
smlocal_rejected_requests_total{endpoint="shop"} 3
"""
