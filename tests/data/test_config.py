"""DataConfig / SourceConfig validation: every bad key or value is named with where it is."""

from __future__ import annotations

import json

import pytest

from octojax.data.config import DataConfig, SourceConfig

GOOD = {"sources": [{"kind": "jsonl", "path": "a.jsonl"}], "tokenizer": "tok"}


def test_defaults_follow_the_octocoder_recipe():
    cfg = DataConfig.from_dict(GOOD)
    assert cfg.seq_len == 2048
    # the public OctoCoder scripts' format: a space after "Answer:" (octopack.md section 3)
    assert cfg.commit_template == "Question: {subject}\n{old_contents}\n\nAnswer: {new_contents}"
    assert cfg.instruction_template == "Question: {prompt}\n\nAnswer: {completion}"
    assert cfg.append_eos and cfg.loss_on == "all" and cfg.overlong == "split"
    assert cfg.num_epochs == 1 and cfg.on_bad_record == "error"
    assert cfg.sources == [SourceConfig(kind="jsonl", path="a.jsonl")]


def test_round_trip_through_json():
    d = {
        **GOOD,
        "sources": [
            {"kind": "jsonl", "path": "a.jsonl", "weight": 2.0},
            {"kind": "commitpackft", "path": "ft/", "languages": ["Python", "Rust"]},
        ],
        "num_epochs": None,
        "loss_on": "answer",
    }
    cfg = DataConfig.from_dict(d)
    again = DataConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    assert again.sources[1].languages == ["Python", "Rust"]


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"seq_lenn": 5}, r"train\.data: seq_lenn: unknown key; known: seq_len"),
        ({"seq_len": 1}, r"train\.data: seq_len: .*greater than or equal to 2 \(got 1\)"),
        ({"seq_len": "2048"}, r"train\.data: seq_len: .*valid integer \(got '2048'\)"),
        ({"overlong": "drop"}, r"train\.data: overlong: .*'split' or 'truncate' \(got 'drop'\)"),
        ({"loss_on": "question"}, r"train\.data: loss_on"),
        ({"on_bad_record": "ignore"}, r"train\.data: on_bad_record"),
        ({"num_epochs": 0}, r"train\.data: num_epochs: .*greater than or equal to 1"),
        ({"num_workers": -1}, r"train\.data: num_workers"),
        ({"append_eos": 1}, r"train\.data: append_eos: .*valid boolean"),
        ({"sources": []}, r"train\.data: sources: List should have at least 1 item"),
        ({"sources": [{"kind": "parquet", "path": "x"}]}, r"train\.data: sources\[0\]\.kind"),
        ({"sources": [{"kind": "jsonl"}]}, r"train\.data: sources\[0\]\.path: Field required"),
        (
            {"sources": [{"kind": "jsonl", "path": "x", "wieght": 2}]},
            r"train\.data: sources\[0\]\.wieght: unknown key",
        ),
        (
            {"sources": [{"kind": "jsonl", "path": "x", "weight": 0}]},
            r"train\.data: sources\[0\]\.weight: .*greater than 0",
        ),
        (
            {"sources": [{"kind": "jsonl", "path": "x", "languages": ["Python"]}]},
            r"sources\[0\]: languages: only a commitpackft source",
        ),
        (
            {"instruction_template": "Q: {prompt}\nA:"},
            r"instruction_template: template: template must contain \{completion\} exactly once",
        ),
        (
            {"commit_template": "{subject} {body} {new_contents}"},
            r"commit_template: template: unknown field \{body\}",
        ),
        ({"commit_template": "{subject"}, r"commit_template: template: not a valid format"),
    ],
)
def test_bad_values_are_named(patch, message):
    with pytest.raises(ValueError, match=message):
        DataConfig.from_dict({**GOOD, **patch}, where="train.data")


def test_missing_tokenizer_and_non_mapping():
    with pytest.raises(ValueError, match=r"data: tokenizer: Field required"):
        DataConfig.from_dict({"sources": GOOD["sources"]})
    with pytest.raises(ValueError, match=r"data: Input should be a valid dictionary"):
        DataConfig.from_dict([1, 2])


def test_constructor_validates_too():
    with pytest.raises(ValueError, match=r"seq_len"):
        DataConfig(sources=[SourceConfig(kind="jsonl", path="a")], tokenizer="t", seq_len=0)
    with pytest.raises(ValueError, match=r"kind"):
        SourceConfig(kind="csv", path="a")
