"""Formatting and loss masks on hand-made records: exact strings and token counts."""

from __future__ import annotations

import numpy as np

from beam_pipelines.records import write_tfrecord
from octojax.data.formatting import commit_template, instruction_template
from octojax.data.pipeline import make_train_iterator


def segments(batch):
    """(inputs, targets, loss_weights) of every segment of a numpy batch, row by row."""
    out = []
    for r in range(batch["inputs"].shape[0]):
        seg = batch["segment_ids"][r]
        for s in range(1, int(seg.max()) + 1):
            idx = np.flatnonzero(seg == s)
            out.append(
                (batch["inputs"][r, idx], batch["targets"][r, idx], batch["loss_weights"][r, idx])
            )
    return out


def test_templates_render_exact_strings():
    text, cut = instruction_template("Question: {prompt}\n\nAnswer:\n{completion}").render(
        {"prompt": "Add {braces}?", "completion": "def f():\n    return {}\n"}
    )
    assert text == "Question: Add {braces}?\n\nAnswer:\ndef f():\n    return {}\n"
    assert text[cut:] == "def f():\n    return {}\n"
    rec = {"subject": "Fix x", "old_contents": "x = 1\n", "new_contents": "x = 2\n"}
    text, cut = commit_template(
        "Question: {subject}\n{old_contents}\n\nAnswer:\n{new_contents}"
    ).render(rec)
    assert text == "Question: Fix x\nx = 1\n\n\nAnswer:\nx = 2\n"
    assert text[cut:] == "x = 2\n"


def test_instruction_examples_tokens_and_answer_mask(tmp_path, make_cfg, tokenizer, data_helpers):
    rows = [
        {
            "prompt": "Write a function that adds.",
            "completion": "def add(a, b):\n    return a + b\n",
        },
        {"instruction": "Explain a hash map.", "output": "A hash map stores keys."},
    ]
    path = data_helpers.write_jsonl(tmp_path / "x.jsonl", rows)
    texts = [
        "Question: Write a function that adds.\n\nAnswer: def add(a, b):\n    return a + b\n",
        "Question: Explain a hash map.\n\nAnswer: A hash map stores keys.",
    ]
    expected = {tuple(tokenizer(t, add_special_tokens=False)["input_ids"] + [0]) for t in texts}
    for loss_on in ("all", "answer"):
        cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=256, loss_on=loss_on)
        it = make_train_iterator(cfg, global_batch_size=1)
        batches = list(it)
        assert len(batches) == 1  # both fit one row
        segs = segments(batches[0])
        got = {tuple(np.concatenate([i, t[-1:]]).tolist()) for i, t, _ in segs}
        assert got == expected
        assert it.stats["example_tokens"] == sum(len(e) for e in expected)
        answers = set()
        for _, targets, weights in segs:
            if loss_on == "all":
                assert (weights == 1).all()
            else:
                # the weighted targets are exactly the answer tokens and the EOS
                assert set(np.unique(weights)) == {0.0, 1.0}
                assert (np.diff(weights) >= 0).all()  # question first, then answer
                # a token straddling "Answer: d|ef" belongs to the answer: its leading space too
                answers.add(tokenizer.decode(targets[weights == 1].tolist()).lstrip(" "))
        if loss_on == "answer":
            assert answers == {
                "def add(a, b):\n    return a + b\n<|endoftext|>",
                "A hash map stores keys.<|endoftext|>",
            }
            assert it.stats["loss_tokens"] == sum(
                sum(
                    end > t.index("Answer: ") + 8
                    for _, end in tokenizer(t, return_offsets_mapping=True)["offset_mapping"]
                )
                + 1
                for t in texts
            )


def test_commit_record_format_and_no_eos(tmp_path, make_cfg, tokenizer, data_helpers):
    rec = data_helpers.commit_record(3)
    write_tfrecord(tmp_path / "ft.tfrecord", [rec])
    text = f"Question: {rec['subject']}\n{rec['old_contents']}\n\nAnswer: {rec['new_contents']}"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    for append_eos, want in ((True, [*ids, 0]), (False, ids)):
        cfg = make_cfg(
            [{"kind": "commitpackft", "path": str(tmp_path / "*.tfrecord")}],
            seq_len=512,
            append_eos=append_eos,
        )
        (batch,) = list(make_train_iterator(cfg, global_batch_size=1))
        ((inputs, targets, _),) = segments(batch)
        assert np.concatenate([inputs, targets[-1:]]).tolist() == want


def test_custom_template(tmp_path, make_cfg, tokenizer, data_helpers):
    path = data_helpers.write_jsonl(tmp_path / "x.jsonl", [{"prompt": "P", "completion": "C"}])
    cfg = make_cfg(
        [{"kind": "jsonl", "path": str(path)}],
        instruction_template="<commit_msg>{prompt}<commit_after>{completion}",
    )
    (batch,) = list(make_train_iterator(cfg, global_batch_size=1))
    ((inputs, targets, _),) = segments(batch)
    assert tokenizer.decode(np.concatenate([inputs, targets[-1:]]).tolist()) == (
        "<commit_msg>P<commit_after>C<|endoftext|>"
    )
