"""Unbiased pass@k (Chen et al., 2021) and per-task summaries.

pass@k = 1 - C(n-c, k) / C(n, k), computed as the product 1 - prod_{i=n-c+1}^{n} (1 - k/i), which
stays exact in floating point where binomials overflow. As in the harness, pass@k is reported
only when every row has at least k samples.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

DEFAULT_KS: tuple[int, ...] = (1, 10, 100)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn from n (c correct) passes."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"need 1 <= k <= n, got k={k}, n={n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(
    counts: Sequence[tuple[int, int]], ks: Iterable[int] = DEFAULT_KS
) -> dict[str, float]:
    """Mean pass@k over rows given as (n, c), for each k that every row's n allows."""
    if not counts:
        return {}
    smallest_n = min(n for n, _ in counts)
    return {
        f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in counts]))
        for k in ks
        if k <= smallest_n
    }
