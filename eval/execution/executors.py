"""The one executor shape: compile then run a program as its language's table entry says.

Each program gets a fresh work dir in its worker slot, is written to the entry's `source` file,
compiled by the entry's compile steps (one sandboxed call) and run by its run step, under the
language's timeout; the work dir is removed afterwards whatever happens. Programs that a shared
test binary covers (Go, Rust: the entry's `shared_binary`) skip the compile and run their tests
from that binary. The languages themselves are data: eval/execution/languages.py.
"""

from __future__ import annotations

import re
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from eval.execution import sandbox
from eval.execution.base import ExecResult, Program, Settings, Slot, tail
from eval.execution.languages import Argv, Language, Values
from eval.execution.services import Built, Step

EXECUTOR_VERSION = "3"  # 2: Go programs through shared test binaries; 3: Rust ones too

_NAME = re.compile(r"\{(\w+)\}")


def fill(template: Argv, values: Values, language: str) -> list[str]:
    """A command template with its `{names}` filled in; a whole-argument `{name}` holding a
    list becomes that many arguments."""
    argv: list[str] = []
    for arg in template:
        whole = _NAME.fullmatch(arg)
        if whole and isinstance(values.get(whole[1]), list):
            argv += values[whole[1]]
        else:
            argv.append(_fill_one(arg, values, language))
    return argv


def _fill_one(text: str, values: Values, language: str) -> str:
    def value(match: re.Match) -> str:
        name = match[1]
        if name not in values:
            raise ValueError(f"language {language!r}: {text!r} names {{{name}}}, "
                             f"which is none of its values ({', '.join(sorted(values))})")  # fmt: skip
        if values[name] is None or isinstance(values[name], list):
            raise ValueError(f"language {language!r}: {{{name}}} in {text!r} is "
                             f"{'unavailable' if values[name] is None else 'a list'}")  # fmt: skip
        return str(values[name])

    return _NAME.sub(value, text)


def _result(
    program: Program, outcome: sandbox.Outcome, *, seconds: float, passed_rule
) -> ExecResult:
    """The verdict for a finished run step (timeouts, output overflow and signals named)."""
    if outcome.timed_out:
        return ExecResult(program.key, False, "timeout", "timed out", seconds)
    detail = tail(outcome.stderr or outcome.stdout)
    if outcome.output_overflow:
        return ExecResult(
            program.key, False, "failed", "output limit exceeded: " + detail[-200:], seconds
        )
    if passed_rule(outcome):
        return ExecResult(program.key, True, "passed", detail, seconds)
    if outcome.returncode is not None and outcome.returncode < 0:
        detail = f"killed by signal {-outcome.returncode}. " + detail
    return ExecResult(program.key, False, "failed", detail, seconds)


@dataclass
class Job:
    """One program in its work dir, as the steps see it; `values` include the slot's own."""

    executor: Executor
    program: Program
    slot: Slot
    workdir: Path
    values: Values
    start: float
    rw_binds: tuple[str, ...] = ()  # the slot's copy (entry.slot_copy), on the standard path

    def elapsed(self) -> float:
        return time.monotonic() - self.start


class Executor:
    """Runs the programs of one language (its table entry) in worker slots."""

    def __init__(self, language: Language, settings: Settings):
        self.language = language
        self.settings = settings
        self.timeout = settings.timeouts[language.name]
        self.values: Values = {}
        self.compile_as_root = False
        self.batch = None  # the run's shared test binaries (entry.shared_binary), if built

    def prepare(self) -> None:
        """Prepare the entry's tools and shared artefacts (once, before the workers start)."""
        lang = self.language
        self.values = {**lang.tools(self.settings), "timeout_s": str(int(self.timeout))}
        if lang.slot_copy is not None:
            lang.slot_copy[1]()  # build the template now, not in the first program's time
        self.compile_as_root = bool(lang.compile_as_root and lang.compile_as_root(self.values))

    def prepare_batch(self, programs: list[Program], slot: Slot) -> None:
        """Build the shared test binaries of this run's programs (once, before the workers start)."""
        shared = self.language.shared_binary
        if shared is None:
            return
        batch = shared.build(self, slot.root.parent / f"{self.language.name}-batch")
        try:
            batch.build(programs, slot)
        except (OSError, ValueError, sandbox.SandboxError):
            return  # a batch is only a shortcut: every program runs the standard way instead
        self.batch = batch

    def env(self, values: Values) -> dict[str, str]:
        """The entry's extra environment; a variable whose `{name}` is None is left out."""
        env = {}
        for key, template in self.language.env.items():
            whole = _NAME.fullmatch(template)
            if whole is None or values.get(whole[1]) is not None:
                env[key] = _fill_one(template, values, self.language.name)
        return env

    def run(self, program: Program, slot: Slot) -> ExecResult:
        """Compile and run `program` in `slot` (from a shared binary when the batch has it)."""
        entry = self.batch.lookup(program) if self.batch is not None else None
        if entry is not None:
            return self._run_shared(program, entry, slot)
        lang = self.language
        for step in (lang.compile, lang.run):
            if isinstance(step, Step):
                step.warm(self, slot)
        role = lang.run.workdir_role if isinstance(lang.run, Step) else sandbox.ROLE_RUN
        workdir = slot.new_workdir(None if self.compile_as_root else role)
        values = self._slot_values(slot, make=True)
        copy = (values[lang.slot_copy[0]],) if lang.slot_copy is not None else ()
        job = Job(self, program, slot, workdir, values, time.monotonic(), rw_binds=copy)
        try:
            if lang.source is not None:
                (workdir / lang.source).write_text(program.source, encoding="utf-8")
            failed = self._compile(job)
            return failed if failed is not None else self._run(job)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _slot_values(self, slot: Slot, *, make: bool) -> Values:
        """The run's values plus the slot's own copy (made on first use when `make`)."""
        if self.language.slot_copy is None:
            return self.values
        name, template = self.language.slot_copy
        copy = slot.root / name
        if make and not copy.exists():
            shutil.copytree(template(), copy)
            slot.hand_over(copy)
        return {**self.values, name: str(copy)}

    def _compile(self, job: Job) -> ExecResult | None:
        """None when the program compiled (or needs no compiling), else its verdict."""
        steps = self.language.compile
        if not steps:
            return None
        built = steps(job) if isinstance(steps, Step) else self._compile_in_sandbox(job, steps)
        if built.status == "timeout":
            return ExecResult(job.program.key, False, "timeout", built.detail, job.elapsed())
        if built.status == "error":
            return ExecResult(
                job.program.key, False, "compile_error", tail(built.detail), job.elapsed()
            )
        return None

    def _compile_in_sandbox(self, job: Job, steps: tuple[Argv, ...]) -> Built:
        """All compile steps in one sandbox call: a shell runs each only if the previous passed."""
        argvs = [fill(step, job.values, self.language.name) for step in steps]
        argv = (
            argvs[0] if len(argvs) == 1 else ["/bin/sh", "-c", " && ".join(map(shlex.join, argvs))]
        )
        built = self._sandboxed(argv, job, as_root=self.compile_as_root)
        if self.compile_as_root:
            job.slot.hand_over(job.workdir)
        if built.timed_out:
            return Built("timeout", "compilation timed out")
        if built.returncode != 0:
            return Built("error", built.stderr or built.stdout)
        return Built("ok")

    def _run(self, job: Job) -> ExecResult:
        """The run step and its verdict."""
        lang = self.language
        if isinstance(lang.run, Step):
            return lang.run(job)
        ran = self._sandboxed(fill(lang.run, job.values, lang.name), job)
        result = _result(job.program, ran, seconds=job.elapsed(), passed_rule=lang.passed)
        if result.status == "failed" and lang.run_build_failed and lang.run_build_failed(ran):
            result.status = "compile_error"
        return result

    def _run_shared(self, program: Program, entry, slot: Slot) -> ExecResult:
        """Run one program's tests from a test binary shared by many programs, in the program's
        own work dir and sandbox with its timeout; the batch's mangled names are restored in the
        output so failure messages read as if the program ran alone."""
        workdir = slot.new_workdir()
        values = self._slot_values(slot, make=False)
        job = Job(self, program, slot, workdir, values, time.monotonic())
        try:
            (workdir / self.language.source).write_text(program.source, encoding="utf-8")
            argv = self.language.shared_binary.argv(entry, self.timeout)
            ran = self._sandboxed(argv, job, ro_binds=(str(entry.binary.parent),))
            ran.stdout, ran.stderr = (
                entry.restore_names(ran.stdout),
                entry.restore_names(ran.stderr),
            )
            return _result(program, ran, seconds=job.elapsed(), passed_rule=self.language.passed)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _sandboxed(self, argv: list[str], job: Job, *, as_root: bool = False,
                   ro_binds: tuple[str, ...] = ()) -> sandbox.Outcome:  # fmt: skip
        """`argv` in the job's work dir under every containment layer, with the entry's
        environment and process limit."""
        lang = self.language
        return sandbox.run(
            argv,
            workdir=job.workdir,
            timeout=self.timeout,
            limits=self.settings.limits(lang.name, processes=lang.processes),
            uid=None if as_root else job.slot.uid(),
            env=sandbox.base_env(job.workdir, self.env(job.values)),
            sandbox=self.settings.sandbox,
            ro_binds=ro_binds,
            rw_binds=job.rw_binds,
        )
