"""Counting events into the stats JSON and checking the accounting identity (no Beam).

Every transform emits small *events* (tuples of strings; the Beam DoFns pre-count them per
bundle and emit ``(event, count)`` pairs) that the pipeline sums:

- ``("input", source)``: one per input item (commit mined, JSONL line, BigQuery row);
- ``("dead", stage, reason)``: a dead letter (stage ``source``, ``commitpack`` or ``commitpackft``);
- ``("dropped", stage, reason)``: a record dropped by a filter or as a duplicate;
- ``("kept", stage)``, ``("kept_lang", stage, lang)``, ``("kept_license", stage, license)``.

:func:`build_stats` turns the counts into the stats document and :func:`check_accounting` verifies
``input = kept + dropped + dead letters`` for each stage.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

STAGES = ("commitpack", "commitpackft")
NO_LICENSE = "(none)"


class AccountingError(RuntimeError):
    """Input count != kept + dropped + dead letters."""


def build_stats(counts: Iterable[tuple[tuple[str, ...], int]], stages: Iterable[str]) -> dict:
    """The stats document from (event, count) pairs, for the stages that ran."""
    counter: Counter[tuple[str, ...]] = Counter()
    for event, n in counts:
        counter[tuple(event)] += n
    stages = list(stages)

    def select(kind: str, stage: str | None = None) -> dict[str, int]:
        out: dict[str, int] = {}
        for event, n in counter.items():
            if event[0] != kind:
                continue
            if stage is not None:
                if event[1] != stage:
                    continue
                key = event[2] if len(event) > 2 else ""
            else:
                key = event[1]
            out[key or NO_LICENSE] = out.get(key or NO_LICENSE, 0) + n
        return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))

    by_source = select("input")
    dead_by_stage = {
        stage: select("dead", stage) for stage in ("source", *stages)
    }  # source-level dead letters come from parsing/mining
    stats: dict[str, Any] = {
        "input": {"total": sum(by_source.values()), "by_source": by_source},
        "dead_letter": {
            "total": sum(sum(d.values()) for d in dead_by_stage.values()),
            "by_stage": {
                stage: {"total": sum(d.values()), "by_reason": d}
                for stage, d in dead_by_stage.items()
            },
        },
    }
    previous_kept = stats["input"]["total"] - sum(dead_by_stage["source"].values())
    for stage in stages:
        dropped = select("dropped", stage)
        kept = counter[("kept", stage)]
        stats[stage] = {
            "input": previous_kept,
            "kept": kept,
            "dropped": {"total": sum(dropped.values()), "by_reason": dropped},
            "dead_letter": sum(dead_by_stage[stage].values()),
            "kept_by_language": select("kept_lang", stage),
            "kept_by_license": select("kept_license", stage),
        }
        previous_kept = kept
    stats["accounting"] = accounting(stats, stages)
    return stats


def accounting(stats: dict, stages: Iterable[str]) -> dict[str, Any]:
    """Per-stage identity ``input == kept + dropped + dead`` and the overall one."""
    checks = {}
    total_input = stats["input"]["total"]
    removed = stats["dead_letter"]["by_stage"]["source"]["total"]
    last_kept = total_input - removed
    for stage in stages:
        s = stats[stage]
        checks[stage] = s["input"] == s["kept"] + s["dropped"]["total"] + s["dead_letter"]
        removed += s["dropped"]["total"] + s["dead_letter"]
        last_kept = s["kept"]
    overall = total_input == last_kept + removed
    return {
        "identity": "input = kept + dropped (all reasons, all stages) + dead letters",
        "input": total_input,
        "kept": last_kept,
        "dropped_and_dead": removed,
        "per_stage_ok": checks,
        "ok": overall and all(checks.values()),
    }


def check_accounting(stats: dict) -> None:
    """Raise :class:`AccountingError` unless every accounting identity holds."""
    acc = stats["accounting"]
    if not acc["ok"]:
        raise AccountingError(
            f"accounting identity broken: input {acc['input']} != kept {acc['kept']} + "
            f"dropped/dead {acc['dropped_and_dead']} (per stage: {acc['per_stage_ok']})"
        )
