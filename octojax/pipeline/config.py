"""The `octojax run` config tree: one YAML for every stage; the embedded default is default.yaml.

The train section is a full TrainConfig (its data sources and tokenizer are filled in by the run);
the data section holds DataOptions (formatting and packing) plus whether to add the instruction mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from eval.data import LANGUAGES
from eval.tasks import TASKS
from octojax.config import Section, load, parse_yaml
from octojax.data.config import DataOptions
from octojax.mesh import MeshSection
from octojax.sampling_config import SamplingConfig
from octojax.train.config import TrainConfig, check_seq_len

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")

EvalTask = Literal[TASKS]
EvalLanguage = Literal[LANGUAGES]


class TokenizerSection(Section):
    vocab_size: int = Field(2048, ge=300)  # byte-level BPE: 256 bytes + specials + merges


class CommitpackSection(Section):
    # "demo": a git repo built from octojax's own modules, one function per commit;
    # "self": this checkout's history; anything else: a path to a git repository.
    repos: list[str] = Field(["demo", "self"], min_length=1)
    extra_args: list[str] = []  # more Beam pipeline options


class RunDataSection(DataOptions):
    instruction_mix: bool = True  # add ../shared/data/octogeex_instruct_mix.jsonl when present


class EvaluateSection(Section):
    enabled: bool = True
    tasks: list[EvalTask] = Field(["humanevalfix-tests", "humanevalsynthesize"], min_length=1)
    languages: list[EvalLanguage] = Field(["python", "js"], min_length=1)
    limit: int | None = Field(16, gt=0)  # first N problems per language; None: all 164
    sampling: SamplingConfig = SamplingConfig()
    # Where generation runs: the training mesh section's form (octojax/mesh.py); None: one device.
    mesh: MeshSection | None = None


class RunConfig(Section):
    """Every stage of `octojax run`; paths are relative to the current directory.

    The train section is a TrainConfig whose `data` and `run_dir` the run sets (from the data
    section and run_dir/train): setting them there is refused rather than silently replaced.
    """

    run_dir: str = "runs/octopack"
    shared_dir: str = "auto"  # auto: ../shared beside the repository or the current directory
    tokenizer: TokenizerSection = TokenizerSection()
    commitpack: CommitpackSection = CommitpackSection()
    train: TrainConfig = TrainConfig()
    data: RunDataSection = RunDataSection()
    evaluate: EvaluateSection = EvaluateSection()

    @model_validator(mode="after")
    def _train_paths_are_the_runs(self) -> RunConfig:
        for key in ("data", "run_dir"):
            if key in self.train.model_fields_set:
                raise ValueError(
                    f"train.{key} is set by the run (use data.* and run_dir); remove it here"
                )
        return self

    @model_validator(mode="after")
    def _seq_len_fits(self) -> RunConfig:
        if self.train.init.source == "scratch":
            n_positions = self.train.model.build().n_positions
            check_seq_len(self.data.seq_len, n_positions, "train.model section")
        return self


def load_run_config(path: str | Path | None = None, overrides: list[str] = ()) -> RunConfig:
    """default.yaml, updated by a YAML file and `a.b=value` overrides; validated as a whole."""
    defaults = parse_yaml(DEFAULT_CONFIG.read_text())
    return load(RunConfig, path, overrides, defaults=defaults, what="run config")
