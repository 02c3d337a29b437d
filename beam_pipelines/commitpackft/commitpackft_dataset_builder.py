"""TensorFlow Datasets builder for CommitPackFT, running the Beam pipeline's own transforms.

Build (Beam DirectRunner locally, or any runner via ``--beam_pipeline_options``)::

    tfds build beam_pipelines/commitpackft --manual_dir MANUAL --data_dir DATA \\
        --file_format array_record --beam_pipeline_options="runner=DirectRunner"

then read it without TensorFlow: ``tfds.data_source("commitpackft", data_dir=DATA)``.

The manual directory holds the inputs (nothing is downloaded):

- ``tokenizer.json`` (StarCoder's, for the token-count rule), required;
- ``repos.txt``: one ``PATH_OR_URL [NAME]`` per line (relative paths are relative to MANUAL),
  and/or ``*.jsonl`` / ``*.jsonl.gz`` CommitPack files.

The default file format is ``array_record`` so the build needs no TensorFlow (TFDS' TFRecord
writer imports it). Drop/dead-letter counts are Beam metrics (namespace ``commitpack``); the
``python -m beam_pipelines.commitpack`` CLI additionally writes them as a stats JSON.
"""

from __future__ import annotations

import glob
import hashlib
import os

import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core import utils as tfds_utils

from beam_pipelines.schema import FIELDS

MANUAL_TOKENIZER = "tokenizer.json"
MANUAL_REPOS = "repos.txt"


def _repo_lines(manual_dir: str) -> list[str]:
    path = os.path.join(manual_dir, MANUAL_REPOS)
    if not os.path.exists(path):
        return []
    lines = []
    with open(path, encoding="utf-8") as fileobj:
        for raw in fileobj:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            location, _, name = line.partition(" ")
            if "://" not in location and not os.path.isabs(location):
                location = os.path.normpath(os.path.join(manual_dir, location))
            lines.append(f"{location} {name}".strip())
    return lines


def example_key(record: dict[str, str]) -> str:
    """Unique key of a CommitPackFT record (its deduplication key, hashed)."""
    text = "\0".join(record[f] for f in ("commit", "subject", "message", "license"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Builder(tfds.core.GeneratorBasedBuilder):
    """CommitPackFT: single-file commits filtered to instruction quality (OctoPack)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "CommitPack + CommitPackFT filters of the OctoPack paper."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Put {MANUAL_TOKENIZER} (StarCoder's tokenizer) in the manual dir, plus {MANUAL_REPOS} "
        "(one git path or URL per line) and/or CommitPack *.jsonl[.gz] files."
    )

    def __init__(self, *, file_format: str | None = None, **kwargs):
        super().__init__(file_format=file_format or "array_record", **kwargs)

    @tfds_utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """This file. (TFDS 4.9.10's default lookup imports the ``importlib_resources`` backport,
        which tensorflow-datasets does not declare as a dependency.)"""
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "CommitPackFT (OctoPack, arXiv 2308.07124): Git commits changing one file, whose "
                "subject reads as an instruction; fields as in bigcode/commitpackft."
            ),
            features=tfds.features.FeaturesDict({f: tfds.features.Text() for f in FIELDS}),
            homepage="https://github.com/bigcode-project/octopack",
            citation="@article{muennighoff2023octopack, title={OctoPack: Instruction Tuning Code "
            "Large Language Models}, journal={arXiv preprint arXiv:2308.07124}, year={2023}}",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        manual_dir = os.fspath(dl_manager.manual_dir)
        tokenizer = os.path.join(manual_dir, MANUAL_TOKENIZER)
        if not os.path.isfile(tokenizer):
            raise FileNotFoundError(f"{tokenizer} missing. {self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        repos = _repo_lines(manual_dir)
        jsonl = sorted(
            glob.glob(os.path.join(manual_dir, "*.jsonl"))
            + glob.glob(os.path.join(manual_dir, "*.jsonl.gz"))
        )
        if not repos and not jsonl:
            raise FileNotFoundError(
                f"{manual_dir}: no {MANUAL_REPOS} and no *.jsonl[.gz] inputs. "
                f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        return {"train": self._generate_examples(repos, jsonl, tokenizer)}

    def _generate_examples(self, repos: list[str], jsonl: list[str], tokenizer: str):
        beam = tfds.core.lazy_imports.apache_beam
        from beam_pipelines.transforms import (
            CommitPackFTStage,
            CommitPackStage,
            ReadCommitPackJsonl,
            ReadGitRepositories,
        )

        class BuildCommitPackFT(beam.PTransform):
            def expand(self, pbegin):
                sources = []
                if repos:
                    sources.append((pbegin | "Git" >> ReadGitRepositories(repos))["records"])
                if jsonl:
                    sources.append((pbegin | "Jsonl" >> ReadCommitPackJsonl(jsonl))["records"])
                raw = sources | "AllSources" >> beam.Flatten()
                commitpack = raw | "CommitPack" >> CommitPackStage()
                ft = commitpack["records"] | "CommitPackFT" >> CommitPackFTStage(tokenizer)
                return ft["records"] | "Key" >> beam.Map(lambda r: (example_key(r), r))

        return "CommitPackFT" >> BuildCommitPackFT()
