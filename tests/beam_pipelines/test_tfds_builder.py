"""The TFDS CommitPackFT builder: builds with Beam into array_record, read with data_source."""

from __future__ import annotations

import shutil

import pytest

tfds = pytest.importorskip("tensorflow_datasets")


@pytest.mark.slow
def test_builds_and_reads_back(alpha_repo, tokenizer_dir, tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipelines.commitpackft import Builder
    from beam_pipelines.filters_ft import keep_fraction
    from beam_pipelines.schema import FIELDS

    repo, expected = alpha_repo
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(f"{tokenizer_dir}/tokenizer.json", manual / "tokenizer.json")
    (manual / "repos.txt").write_text(f"{repo.path} octo/alpha\n")
    data_dir = tmp_path / "data"
    builder = Builder(data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(manual),
            beam_options=PipelineOptions(["--runner=DirectRunner"]),
        )
    )
    want = {s for s, label in expected.items() if label == "ft"}
    bump = next(s for s, label in expected.items() if label == "cp")
    if keep_fraction(bump) >= 0.9:
        want.add(bump)

    source = tfds.data_source("commitpackft", data_dir=str(data_dir), split="train")
    rows = [source[i] for i in range(len(source))]
    assert {row["commit"].decode() for row in rows} == want
    assert set(rows[0]) == set(FIELDS)
    assert builder.info.splits["train"].num_examples == len(want)
    assert builder.info.file_format.value == "array_record"


def test_refuses_without_tokenizer(tmp_path):
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipelines.commitpackft import Builder

    manual = tmp_path / "manual"
    manual.mkdir()
    (manual / "repos.txt").write_text("some/repo\n")
    builder = Builder(data_dir=str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(manual), beam_options=PipelineOptions(["--runner=DirectRunner"])
            )
        )
