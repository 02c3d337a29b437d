"""`octojax run`: tokenizer -> CommitPackFT (Beam) -> instruction tuning -> HumanEvalPack -> report.

Each stage reads the previous stage's files and writes its own directory under run_dir, ending
with a `.done.json` marker; a re-run skips finished stages whose inputs did not change, and an
interrupted training stage resumes from its last checkpoint. The Beam pipeline runs in a
subprocess, since octojax itself never imports Apache Beam.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from octojax.config import build
from octojax.data.config import DataConfig
from octojax.pipeline.config import RunConfig
from octojax.pipeline.results import (
    RESULT_TYPES,
    CommitpackResult,
    EvaluateResult,
    ReportResult,
    StageResult,
    TokenizerResult,
    TrainResult,
)
from octojax.train.config import TrainConfig

STAGES = ("tokenizer", "commitpack", "train", "evaluate", "report")


def find_shared(setting: str | None) -> Path | None:
    """../shared beside the repository (or the current directory) when setting is 'auto'."""
    if setting and setting != "auto":
        return Path(setting) if Path(setting).is_dir() else None
    import octojax

    for base in (Path(octojax.__file__).resolve().parents[1], Path.cwd()):
        candidate = base.parent / "shared"
        if candidate.is_dir():
            return candidate
    return None


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


class Run:
    """The stages of one run directory; `execute()` runs what is not done yet."""

    def __init__(self, cfg: RunConfig, *, force: tuple[str, ...] = (), only: tuple[str, ...] = ()):
        self.cfg = cfg
        self.dir = Path(cfg.run_dir).absolute()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.shared = find_shared(cfg.shared_dir)
        self.force, self.only = set(force), set(only)
        for name in self.force | self.only:
            if name not in STAGES:
                raise ValueError(f"unknown stage {name!r}; stages: {', '.join(STAGES)}")
        self.timings: dict[str, float] = {}

    # ---- bookkeeping ------------------------------------------------------------------------------

    def stage_dir(self, name: str) -> Path:
        return self.dir / name

    def _inputs(self, name: str) -> dict:
        """What a stage depends on: its config section and the previous stages' markers."""
        deps = {
            "tokenizer": [self.cfg.tokenizer.to_dict(), self.cfg.data.instruction_mix],
            "commitpack": [self.cfg.commitpack.to_dict()],
            "train": [self.cfg.train.to_dict(), self.cfg.data.to_dict()],
            "evaluate": [self.cfg.evaluate.to_dict()],
            "report": [],
        }[name]
        before = STAGES[: STAGES.index(name)]
        return {"config": deps, "after": [self.marker(s).get("digest") for s in before]}

    def marker(self, name: str) -> dict:
        """The `.done.json` of a finished stage ({} when it has not finished)."""
        path = self.stage_dir(name) / ".done.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def result(self, name: str) -> StageResult:
        """The typed record of a finished stage (every field None when it has not finished)."""
        return RESULT_TYPES[name].from_marker(self.marker(name))

    def is_done(self, name: str) -> bool:
        marker = self.marker(name)
        return bool(marker) and marker.get("inputs") == _digest(self._inputs(name))

    def _finish(self, name: str, seconds: float, result: StageResult) -> None:
        inputs = _digest(self._inputs(name))
        marker = {
            "inputs": inputs,
            "digest": _digest([inputs, time.time()]),
            "seconds": seconds,
            **result.to_marker(),
        }
        (self.stage_dir(name) / ".done.json").write_text(json.dumps(marker, indent=2) + "\n")

    def say(self, message: str) -> None:
        print(f"[run] {message}", flush=True)

    # ---- driver -----------------------------------------------------------------------------------

    def execute(self) -> dict:
        """Run every stage not done yet, holding the run dir's lock (one `octojax run` at a time
        per run dir: a second is refused at once, naming this one)."""
        from beam_pipelines.run_lock import RunLock

        with RunLock(self.dir, f"octojax run ({self.dir})"):
            return self._execute()

    def _execute(self) -> dict:
        steps: dict[str, Callable[[], StageResult]] = {
            "tokenizer": self.build_tokenizer,
            "commitpack": self.build_commitpack,
            "train": self.train,
            "evaluate": self.evaluate,
            "report": self.report,
        }
        for name in STAGES:
            if self.only and name not in self.only:
                continue
            if name != "report" and self.is_done(name) and name not in self.force:
                self.say(f"{name}: done earlier ({self.stage_dir(name)}), skipping")
                continue
            self.say(f"{name}: starting")
            self.stage_dir(name).mkdir(parents=True, exist_ok=True)
            t0 = time.perf_counter()
            result = steps[name]()
            seconds = time.perf_counter() - t0
            self._finish(name, seconds, result)
            self.say(f"{name}: finished in {seconds:.1f}s")
        return json.loads((self.stage_dir("report") / "report.json").read_text())

    # ---- stages -----------------------------------------------------------------------------------

    def _instruction_mix(self) -> Path | None:
        if not self.cfg.data.instruction_mix or self.shared is None:
            return None
        path = self.shared / "data" / "octogeex_instruct_mix.jsonl"
        return path if path.exists() else None

    def build_tokenizer(self) -> TokenizerResult:
        from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer

        texts = list(octojax_source_corpus())
        mix = self._instruction_mix()
        if mix is not None:
            for line in mix.read_text().splitlines():
                row = json.loads(line)
                texts.append(row.get("prompt", "") + "\n" + row.get("completion", ""))
        out = train_bpe_tokenizer(
            texts, self.stage_dir("tokenizer"), vocab_size=self.cfg.tokenizer.vocab_size
        )
        self.say(f"tokenizer: byte-level BPE trained on {len(texts)} texts -> {out}")
        return TokenizerResult(texts=len(texts), instruction_mix=str(mix) if mix else None)

    def _repos(self) -> list[str]:
        from octojax.pipeline.demo_repo import build_demo_repo

        repos = []
        for spec in self.cfg.commitpack.repos:
            if spec == "demo":
                repos.append(str(build_demo_repo(self.stage_dir("commitpack") / "demo_repo")))
            elif spec == "self":
                import octojax

                root = Path(octojax.__file__).resolve().parents[1]
                if (root / ".git").exists():
                    repos.append(str(root))
                else:
                    self.say("commitpack: octojax is not a git checkout; 'self' skipped")
            else:
                repos.append(spec)
        return repos

    def build_commitpack(self) -> CommitpackResult:
        out = self.stage_dir("commitpack") / "data"
        cmd = [
            sys.executable, "-m", "beam_pipelines.commitpack", "--source", "git",
            "--repos", *self._repos(), "--output", str(out), "--stage", "ft",
            "--tokenizer", str(self.stage_dir("tokenizer")), "--overwrite",
            *self.cfg.commitpack.extra_args,
        ]  # fmt: skip
        self.say("commitpack: " + " ".join(cmd))
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        seconds = time.perf_counter() - t0
        stats = json.loads((out / "stats.json").read_text())
        commits = stats["input"]["total"]
        return CommitpackResult(
            output=str(out),
            commits_in=commits,
            commitpack_kept=stats["commitpack"]["kept"],
            commitpackft_kept=stats["commitpackft"]["kept"],
            commits_per_s=commits / seconds,
        )

    def _train_config(self) -> TrainConfig:
        """The run's train section with its data: CommitPackFT (when not empty) + the mix."""
        sources = []
        ft = self.stage_dir("commitpack") / "data" / "commitpackft"
        if json.loads((ft.parent / "stats.json").read_text())["commitpackft"]["kept"] > 0:
            sources.append({"kind": "commitpackft", "path": str(ft)})
        mix = self._instruction_mix()
        if mix is not None:
            sources.append({"kind": "jsonl", "path": str(mix)})
        if not sources:
            raise RuntimeError("train: CommitPackFT is empty and no instruction mix was found")
        options = self.cfg.data.model_dump(exclude={"instruction_mix"})
        data = DataConfig(
            **options, tokenizer=str(self.stage_dir("tokenizer")), sources=sources
        )  # train.data and train.run_dir are the run's own (RunConfig refuses them set by hand)
        train = {
            **self.cfg.train.model_dump(),
            "run_dir": str(self.stage_dir("train")),
            "data": data,
        }
        return build(
            TrainConfig, train, "run config train"
        )  # validated whole, cross-field checks too

    def train(self) -> TrainResult:
        from octojax.config import ConfigError
        from octojax.train.metrics import read_metrics
        from octojax.train.trainer import Trainer, set_aside

        cfg = self._train_config()
        trainer = Trainer(cfg)
        try:
            trainer.check_resume()
        except ConfigError as e:  # the stage re-runs because its config changed: start over
            self.say(f"train: {e}")
            set_aside(cfg)
        result = trainer.run()
        if result.exit_code:
            raise KeyboardInterrupt if result.exit_code == 130 else SystemExit(result.exit_code)
        records = read_metrics(result.run_dir)
        tps = sorted(r["tokens_per_s"] for r in records[1:]) or [0.0]
        return TrainResult(
            steps=result.final_step,
            first_loss=records[0]["loss"] if records else None,
            last_loss=records[-1]["loss"] if records else None,
            tokens_per_s_median=tps[len(tps) // 2],
            hf_dir=str(result.hf_dir) if result.hf_dir else None,
            sources=[s.path for s in cfg.data.sources],
        )

    def evaluate(self) -> EvaluateResult:
        """HumanEvalPack generate + execute + score: the generator is built here (on
        evaluate.mesh) and handed to eval's Python API, which never imports octojax.generate."""
        ev = self.cfg.evaluate
        data_dir = self.shared / "humanevalpack" if self.shared else None
        if not ev.enabled or data_dir is None or not data_dir.is_dir():
            self.say("evaluate: HumanEvalPack not found (../shared/humanevalpack); skipped")
            return EvaluateResult(skipped=True)
        from eval import api
        from octojax.generate.generator import Generator

        hf_dir = self.stage_dir("train") / "hf"
        generator = Generator.from_pretrained(hf_dir, dtype="float32", mesh=ev.mesh)
        run = api.generate(
            api.ModelOptions(hf_dir, dtype="float32"),
            generator=generator,
            data=api.DataOptions(data_dir=data_dir, limit=ev.limit),
            tasks=list(ev.tasks),
            languages=list(ev.languages),
            sampling=ev.sampling,
            output=api.OutputOptions(self.stage_dir("evaluate"), model_name="octojax-smoke"),
            resume=True,
        )
        return EvaluateResult(
            tasks=[r.task for r in run.runs],
            results=str(run.results_json) if run.results_json else None,
        )

    def report(self) -> ReportResult:
        from octojax.pipeline.report import write_report

        report = write_report(self)
        return ReportResult(
            report=str(self.stage_dir("report") / "report.md"), tables=bool(report["results"])
        )
