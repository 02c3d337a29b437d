"""A HumanEvalPack-shaped stand-in for Python, for machines that hold no HumanEvalPack (the GPU).

bench/generate_bench.py's `--workload humanevalpack` reads HumanEvalPack's python.jsonl, builds
the harness's synthesize prompts and sizes each sample from its canonical solution's token count.
The lent GPU machine has no copy of the data, and the project must not copy it into its tree. This
writes, into OUT, a python.jsonl of the same 164 records in which every text field is replaced by
a stretch of octojax's own source with the same token count under the workload's tokenizer (a BPE
of vocabulary 8192 trained on octojax's source, as generate_bench's workload model); task ids stay,
entry points become f0..f163. Only the lengths come from the data, so the workload run there has
HumanEvalPack's prompt and solution lengths. OUT/SHAPE.json records the lengths both ways.

    python bench/humaneval_shape.py --data-dir ../shared/humanevalpack --out .device/humanevalpack
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.data import load_problems  # noqa: E402
from eval.tasks import SYNTHESIZE, Task  # noqa: E402
from octojax.tokenizer import load_tokenizer, octojax_source_corpus, train_bpe_tokenizer  # noqa: E402

WORKLOAD_VOCAB = 8192  # bench/generate_bench.py's _workload_model trains this vocabulary
KEEP = ("task_id", "entry_point")


class SourceStretches:
    """Consecutive stretches of octojax's source, cut at token boundaries."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.text = "\n".join(octojax_source_corpus())
        enc = tokenizer(self.text, add_special_tokens=False, return_offsets_mapping=True)
        self.offsets = enc["offset_mapping"]
        self.cursor = 0

    def take(self, n_tokens: int) -> str:
        """The next stretch of n_tokens tokens (wrapping around the corpus)."""
        if n_tokens <= 0:
            return ""
        if self.cursor + n_tokens > len(self.offsets):
            self.cursor = 0
        start, end = self.offsets[self.cursor][0], self.offsets[self.cursor + n_tokens - 1][1]
        self.cursor += n_tokens
        return self.text[start:end]

    def count(self, text: str) -> int:
        return len(self.tok(text, add_special_tokens=False)["input_ids"])


def stand_in(problems: list[dict], stretches: SourceStretches) -> list[dict]:
    """Each record with its text fields replaced by same-token-count source stretches."""
    out = []
    for i, prob in enumerate(problems):
        rec = {}
        for key, value in prob.items():
            if key == "entry_point":
                rec[key] = f"f{i}"
            elif key in KEEP or not isinstance(value, str):
                rec[key] = value
            else:
                rec[key] = stretches.take(stretches.count(value))
        out.append(rec)
    return out


def lengths(problems: list[dict], stretches: SourceStretches) -> dict[str, list[int]]:
    """Token counts of each synthesize prompt and canonical solution."""
    task = Task(SYNTHESIZE, "python")
    return {
        "prompt_tokens": [stretches.count(task.prompt(p)) for p in problems],
        "solution_tokens": [stretches.count(p["canonical_solution"]) for p in problems],
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "humanevalpack"))
    p.add_argument("--out", default=str(ROOT / ".device" / "humanevalpack"))
    args = p.parse_args(argv)
    problems = load_problems("python", args.data_dir)
    with tempfile.TemporaryDirectory() as d:
        tok = load_tokenizer(
            train_bpe_tokenizer(octojax_source_corpus(), d, vocab_size=WORKLOAD_VOCAB)
        )
    stretches = SourceStretches(tok)
    records = stand_in(problems, stretches)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "python.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    real, alike = lengths(problems, stretches), lengths(records, stretches)
    shape = {"source": f"HumanEvalPack python ({len(problems)} problems) from {args.data_dir}",
             "tokenizer": f"BPE, vocabulary {WORKLOAD_VOCAB}, trained on octojax's source",
             "real": real, "stand_in": alike}  # fmt: skip
    (out / "SHAPE.json").write_text(json.dumps(shape) + "\n")
    mean = {k: {w: round(sum(v[w]) / len(v[w]), 1) for w in v} for k, v in (("real", real),
            ("stand_in", alike))}  # fmt: skip
    print(f"[shape] {len(records)} records in {out / 'python.jsonl'}; mean tokens {mean}")


if __name__ == "__main__":
    main()
