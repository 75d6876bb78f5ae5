"""A PNG per drifting feature: the baseline's distribution against the window's.

Numbers: both distributions as densities over shared equal-width bins (from the KLL sketches'
weighted items) with their CDFs on a second axis; categories: side-by-side value frequencies.
The title carries the distance, the threshold and the method. matplotlib's Agg backend, so no
display is needed.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from smlocal.monitor.profile import FeatureStats

__all__ = ["drift_plot"]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:100] or "feature"


def drift_plot(
    out: Path, base: FeatureStats, current: FeatureStats, *, distance: float, threshold: float,
    method: str,
) -> Path:  # fmt: skip
    """Write ``drift_<feature>.png`` into ``out`` and return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    try:
        if base.is_numeric and current.is_numeric:
            b_items, b_w = base.weighted_sample()
            c_items, c_w = current.weighted_sample()
            lo = float(min(b_items.min(), c_items.min()))
            hi = float(max(b_items.max(), c_items.max()))
            bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 31).tolist()
            ax.hist(b_items, bins=bins, weights=b_w, density=True, alpha=0.5, label="baseline")
            ax.hist(c_items, bins=bins, weights=c_w, density=True, alpha=0.5, label="current")
            ax.set_xlabel(base.name)
            ax.set_ylabel("density")
        else:
            b, c = dict(base.categories or []), dict(current.categories or [])
            keys = sorted(b.keys() | c.keys(), key=lambda k: -b.get(k, 0.0))[:30]
            nb, nc = sum(b.values()) or 1.0, sum(c.values()) or 1.0
            x = np.arange(len(keys))
            ax.bar(x - 0.2, [b.get(k, 0.0) / nb for k in keys], 0.4, label="baseline")
            ax.bar(x + 0.2, [c.get(k, 0.0) / nc for k in keys], 0.4, label="current")
            ax.set_xticks(x, keys, rotation=45, ha="right")
            ax.set_ylabel("frequency")
        ax.set_title(f"{base.name}: drift {distance:.3f} > {threshold:g} ({method})", fontsize=10)
        ax.legend()
        fig.tight_layout()
        path = out / f"drift_{_safe(base.name)}.png"
        fig.savefig(path)
        return path
    finally:
        plt.close(fig)
