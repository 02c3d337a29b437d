"""Scoring bookkeeping with given verdicts (no execution), and program keys."""

from __future__ import annotations

import pytest

from eval.scoring import Verdict, sample_key, summarize
from eval.tasks import EXPLAIN_SYNTHESIZE, SYNTHESIZE, Entry, Task

P, F = Verdict(True, "passed"), Verdict(False, "failed", "AssertionError")


def test_summarize_pass_at_k_and_rows(problems):
    task = Task(SYNTHESIZE, "python")
    entries = task.entries(problems["python"][:2])
    verdicts = [[P, F, F, F, F], [P, P, P, P, P]]
    result = summarize(task, entries, verdicts, ks=(1, 2, 10), model="m")
    assert result["pass@1"] == pytest.approx((0.2 + 1.0) / 2)
    assert result["pass@2"] == pytest.approx((0.4 + 1.0) / 2)  # 1 - C(4,2)/C(5,2) = 0.4
    assert "pass@10" not in result
    assert result["harness_task"] == "humanevalsynthesize-python"
    assert result["n_samples"] == 5 and result["num_problems"] == 2
    row = result["rows"][0]
    assert (row["task_id"], row["n"], row["correct"]) == ("Python/0", 5, 1)
    assert row["samples"][1] == {
        "passed": False,
        "status": "failed",
        "detail": "AssertionError",
        "seconds": 0.0,
        "cached": False,
    }


def test_explain_synthesize_rows_keep_description_index(problems):
    task = Task(EXPLAIN_SYNTHESIZE, "go")
    entries = task.entries(problems["go"][:1], [["d0", "d1"]])
    result = summarize(task, entries, [[P], [F]])
    assert result["num_problems"] == 1 and result["num_rows"] == 2
    assert result["pass@1"] == 0.5
    assert [r["description_index"] for r in result["rows"]] == [0, 1]
    assert sample_key(entries[1], 0) == "Go/0@d1#0"
    assert sample_key(Entry(problems["go"][3]), 7) == "Go/3#7"


def test_summarize_checks_shapes(problems):
    task = Task(SYNTHESIZE, "python")
    with pytest.raises(ValueError, match="1 verdict rows for 2 entries"):
        summarize(task, task.entries(problems["python"][:2]), [[P]])
