"""pass@k against values computed by hand from 1 - C(n-c, k) / C(n, k)."""

from __future__ import annotations

import pytest

from eval.metrics import mean_pass_at_k, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 1, 0.4),  # 1 - 3/5
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (5, 0, 3, 0.0),
        (5, 5, 5, 1.0),
        (5, 3, 3, 1.0),  # n - c < k: every draw of 3 holds a correct one
        (20, 3, 10, 17 / 19),  # C(17,10)/C(20,10) = (10*9*8)/(20*19*18) = 2/19
        (20, 1, 1, 0.05),
        (200, 1, 100, 0.5),  # C(199,100)/C(200,100) = 100/200; binomials ~1e58
        (1000, 1, 500, 0.5),  # binomials ~1e299: the product form stays exact
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(5, 6, 1)
    with pytest.raises(ValueError):
        pass_at_k(5, 1, 6)


def test_mean_pass_at_k_reports_only_ks_every_row_allows():
    counts = [(20, 3), (20, 0), (10, 10)]
    result = mean_pass_at_k(counts, ks=(1, 10, 100))
    assert set(result) == {"pass@1", "pass@10"}
    assert result["pass@1"] == pytest.approx((3 / 20 + 0 + 1) / 3)
    assert result["pass@10"] == pytest.approx((17 / 19 + 0 + 1) / 3)
    assert mean_pass_at_k([]) == {}
