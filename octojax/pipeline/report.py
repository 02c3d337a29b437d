"""The final report of `octojax run`: Table-2-style results, training curve, throughput, artefacts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from octojax.pipeline.run import Run


def plot_training_curve(metrics: list[dict], out: Path) -> Path | None:
    """Loss (and learning rate) against step, as a PNG."""
    if not metrics:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in metrics]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.plot(steps, [r["loss"] for r in metrics], label="training loss", color="tab:blue")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats / token)")
    ax.grid(alpha=0.3)
    lr_ax = ax.twinx()
    lr_ax.plot(
        steps, [r["lr"] for r in metrics], label="learning rate", color="tab:orange", alpha=0.6
    )
    lr_ax.set_ylabel("learning rate")
    fig.legend(loc="upper center", bbox_to_anchor=(0.5, 0.88))
    ax.set_title("octojax instruction tuning")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def write_report(run: Run) -> dict:
    from eval.report import load_results, markdown_table
    from octojax.train.metrics import read_metrics

    out_dir = run.stage_dir("report")
    stages = ("tokenizer", "commitpack", "train", "evaluate")
    train_dir = run.stage_dir("train")
    metrics = read_metrics(train_dir) if (train_dir / "metrics.jsonl").exists() else []
    curve = plot_training_curve(metrics, out_dir / "training_curve.png")
    results = load_results(run.stage_dir("evaluate") / "results.json")
    table = markdown_table(results) if results else "(evaluation skipped: no HumanEvalPack data)"
    cp, tr = run.result("commitpack"), run.result("train")
    throughput = {
        "commitpack_commits_per_s": cp.commits_per_s,
        "train_tokens_per_s": tr.tokens_per_s_median,
        "seconds_per_stage": {s: run.marker(s).get("seconds") for s in stages},
    }
    artefacts = {
        "tokenizer": str(run.stage_dir("tokenizer")),
        "commitpack": cp.output,
        "demo_repo": str(run.stage_dir("commitpack") / "demo_repo"),
        "checkpoints": str(train_dir / "checkpoints"),
        "metrics": str(train_dir / "metrics.jsonl"),
        "tensorboard": str(train_dir / "tensorboard"),
        "hf_model": tr.hf_dir,
        "evaluation": str(run.stage_dir("evaluate")),
        "training_curve": str(curve) if curve else None,
    }
    report = {
        "results": results,
        "data": {k: getattr(cp, k) for k in ("commits_in", "commitpack_kept", "commitpackft_kept")},
        "training": {k: getattr(tr, k) for k in ("steps", "first_loss", "last_loss", "sources")},
        "throughput": throughput,
        "artefacts": artefacts,
    }
    (out_dir / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")

    def fmt(x, spec=".1f"):
        return "n/a" if x is None else format(x, spec)

    lines = [
        "# octojax run report",
        "",
        "## HumanEvalPack (pass@1, %)",
        "",
        table.strip(),
        "",
        "With the embedded default (a ~1M-parameter model trained for minutes on a CPU) the scores only "
        "show that every stage ran, not model quality.",
        "",
        "## Data",
        "",
        f"- commits mined: {cp.commits_in}; CommitPack kept {cp.commitpack_kept}; "
        f"CommitPackFT kept {cp.commitpackft_kept} (drop reasons: `{cp.output}/stats.json`)",
        "",
        "## Training",
        "",
        f"- steps: {tr.steps}; loss {fmt(tr.first_loss, '.3f')} -> {fmt(tr.last_loss, '.3f')}",
        f"- sources: {', '.join(tr.sources)}",
        f"- curve: {artefacts['training_curve']}",
        "",
        "## Throughput",
        "",
        f"- CommitPack pipeline (DirectRunner, whole pipeline incl. start-up): {fmt(throughput['commitpack_commits_per_s'])} commits/s",
        f"- training: {fmt(throughput['train_tokens_per_s'], '.0f')} tokens/s (median over logged intervals)",
        "- seconds per stage: "
        + ", ".join(f"{s} {fmt(v)}" for s, v in throughput["seconds_per_stage"].items()),
        "",
        "## Artefacts",
        "",
        *[f"- {k}: {v}" for k, v in artefacts.items()],
        "",
    ]
    text = "\n".join(lines)
    (out_dir / "report.md").write_text(text)
    print(text, flush=True)
    return report
