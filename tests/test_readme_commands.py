"""The command lines of README.md and docs/*.md still work, so the docs cannot drift from the code.

Every `octojax ...` and `python -m <our module> ...` line is taken from the Markdown itself (shell
code blocks, backslash continuations joined, and inline `code` spans), never retyped here:

- Checked, all of them (fast): the subcommand exists; every `--flag` is one the real argparse
  parser of that program knows (for the CommitPack pipeline: its own parser, else an Apache Beam
  pipeline option); a line without placeholders parses completely (types, choices, required
  flags); `key.sub=value` overrides of `octojax train/plan/run` are loaded with the named config
  from configs/ (unknown keys and bad values fail). Synopsis notation is read as a user would:
  `[...]` optional parts are included for checking, `a|b` takes `a`, `...` / `R...` stand for
  arguments, and N / I / $i are numbers.
- Executed (slow, in a temp dir with tiny fixtures: a one-step run of the `smoke` preset with a
  300-token tokenizer, two three-commit git repositories, the repo's configs/): README's
  `convert export runs/octocoder ...` and `convert import /models/starcoder ...` (the export as the
  HF folder), docs/generation.md's `octojax generate --model DIR ...` (the export, on 8 fake CPU
  devices for its mesh; the optional multi-host part left out), docs/training.md's
  `octojax plan --config configs/octocoder.yaml --device v5p-16`, and docs/commitpack.md's
  `python -m beam_pipelines.commitpack --source git --repos ../proj1 ../proj2 --output out/cp`.
- Only checked, and why: `octojax run` (the whole loop, minutes: tests/pipeline runs it);
  `octojax commitpack ...` (run end to end in tests/reliability/test_commitpack_cli.py); training
  on real configs (need model weights and data; tests/train trains); the multi-host loop (tests/
  train/test_multihost.py); `python -m eval score/generate/describe-then-synthesize/table` (need
  generations, sandbox toolchains or a results file; tests/eval runs them); Dataflow, TPU, GPU and
  gs:// lines (cloud resources).
- Not ours, not checked: `pip`, `pytest`, `bash`, `srun`, `gcloud` (listed in NOT_OURS).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.xla import xla_flags

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
NOT_OURS = ("pip", "pytest")  # python -m MODULE lines of other tools
PARSED = ("eval", "beam_pipelines.commitpack")  # modules whose argument parsers are checked
OPERATORS = {"&&", "||", ";", "|", "&"}
LAUNCHERS = {"srun", "do", "then", "env", "time"}  # words after which a command starts
NUMBERS = {"N": "2", "I": "0", "$i": "0"}  # placeholders where the flag takes an integer
PLACEHOLDER_OVERRIDES = {"key.sub=value", "section.key=value", "key=value"}
COMMAND_SPAN = r"(octojax|python3? -m \S+)\s|python3? -m \S+$"  # an inline span of a command
# Inline spans that name a form rather than a command line.
FORMS = {"octojax <command>: error: <file or key>: <problem>", "octojax --debug <command>"}


@dataclass(frozen=True)
class DocCommand:
    """One command line of the docs: where, as written, and as argv (program name first)."""

    where: str
    text: str
    inline: bool

    def tokens(self) -> list[str]:
        """shlex tokens of the command alone (from the program name to the next shell operator)."""
        words = shlex.split(self.text, comments=not self.inline)
        start = _program_start(words)
        end = next((i for i in range(start, len(words)) if words[i] in OPERATORS), len(words))
        return words[start:end]

    def argv(self, optional: bool = True) -> tuple[list[str], bool]:
        """(argv with placeholders filled, whether it is a synopsis that leaves arguments out;
        an inline span may show one flag of a command). optional=False drops the `[...]` parts
        (what running the line needs)."""
        out, depth, synopsis = [], 0, self.inline
        for word in self.tokens():
            opens = len(word) - len(word.lstrip("["))  # `[--json]`, `[--mesh`; not `k=[a,b]`
            word, closes = word[opens:], 0
            while word.endswith("]") and word.count("]") > word.count("["):
                word, closes = word[:-1], closes + 1
            depth += opens
            if word and word != "..." and (optional or depth == 0):
                out.append(_fill(word))
            depth -= closes
            synopsis |= word.endswith("...") or "<" in word
        return out, synopsis

    def program(self) -> tuple[str, list[str]]:
        """('octojax' or the module of `python -m`, its arguments)."""
        argv, _ = self.argv()
        if argv[0] == "octojax":
            return "octojax", argv[1:]
        assert argv[1] == "-m", self.text
        return argv[2], argv[3:]


def _fill(word: str) -> str:
    """A placeholder as a value the parser takes: R... -> R, a|b -> a, <name> -> name, N -> 2."""
    word = word.removesuffix("...")
    if "|" in word and not word.startswith("-"):
        word = word.split("|")[0]
    return NUMBERS.get(word, word.replace("<", "").replace(">", ""))


def _logical_lines(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Backslash continuations joined; (first line number, text)."""
    out, buf, first = [], "", 0
    for number, line in lines:
        if not buf:
            first = number
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        out.append((first, buf + line))
        buf = ""
    return out


def _command_texts(text: str) -> list[str]:
    """The shell line itself if it runs one of our programs, and any command inside a quoted
    argument (`gcloud ... --command "cd octojax && octojax train ..."`)."""
    words = shlex.split(text, comments=True)
    found = [text.strip()] if _program_start(words) is not None else []
    for word in words:
        if " " in word:
            found += _command_texts(word)
    return found


def _program_start(words: list[str]) -> int | None:
    """Index of `octojax` or of `python -m` among shell words (None: no such command)."""
    for i, word in enumerate(words):
        before = words[i - 1] if i else ";"
        at_command = before in OPERATORS or before in LAUNCHERS or re.match(r"-|\w+=", before)
        python_m = word in ("python", "python3") and words[i + 1 : i + 2] == ["-m"]
        if at_command and (word == "octojax" or python_m):
            return i
    return None


def doc_commands(path: Path) -> list[DocCommand]:
    """The command lines of one Markdown file: in shell code blocks (fenced, or indented by four
    spaces after a blank line), and inline `code` spans."""
    found, fence, block, indented, previous = [], None, [], [], ""
    rel = path.relative_to(REPO)

    def flush(lines: list[tuple[int, str]]) -> None:
        for first, line_text in _logical_lines(lines):
            found.extend(DocCommand(f"{rel}:{first}", t, False) for t in _command_texts(line_text))

    for number, line in enumerate(path.read_text().splitlines(), 1):
        if fence is None and line.startswith("    ") and (indented or not previous.strip()):
            indented.append((number, line))
        elif indented and line.strip():
            flush(indented)
            indented = []
        previous = line
        if line.lstrip().startswith("```"):
            if fence is not None and fence in ("bash", "sh", "shell", ""):
                flush(block)
            fence, block = (line.strip()[3:], []) if fence is None else (None, [])
        elif fence is not None:
            block.append((number, line))
        elif not indented:
            for span in re.findall(r"`([^`]+)`", line):
                if re.match(COMMAND_SPAN, span) and span not in FORMS:
                    found.append(DocCommand(f"{rel}:{number}", span, inline=True))
    flush(indented)
    return found


ALL = [c for path in DOCS for c in doc_commands(path)]


def test_the_docs_have_command_lines():
    """The extraction itself: README's command table and code blocks are all found."""
    readme = {c.text for c in ALL if c.where.startswith("README.md")}
    assert (
        "octojax commitpack --source git --repos R... --output OUT --stage ft --tokenizer TOK"
        in (readme)
    )
    assert any(t.startswith("octojax convert export runs/octocoder") for t in readme)
    assert len(ALL) >= 40, [c.text for c in ALL]


# ---- checking against the real parsers ------------------------------------------------------


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def _walk(parser: argparse.ArgumentParser, args: list[str]) -> tuple[list, list[str], list[str]]:
    """Follow subcommand names: ([parsers from the top], the names, the arguments left)."""
    chain, names = [parser], []
    args = list(args)
    while True:
        sub = _subparsers(chain[-1])
        rest = [a for a in args if a != "--debug"]  # octojax's top-level flag
        if sub is None or not rest or rest[0] not in sub.choices:
            return chain, names, args
        args.remove(rest[0])
        chain.append(sub.choices[rest[0]])
        names.append(rest[0])


def _unknown_flags(chain: list[argparse.ArgumentParser], args: list[str]) -> list[str]:
    known = {s for p in chain for a in p._actions for s in a.option_strings}
    flags = [a.split("=")[0] for a in args if a.startswith("-") and not re.match(r"-\d", a)]
    return [f for f in flags if f not in known]


def _parse(parser_call, args: list[str]) -> str | None:
    """None, or argparse's error message (it exits)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            parser_call(args)
        except SystemExit as e:
            return err.getvalue().strip().splitlines()[-1] if e.code else None
    return None


def _check_beam(args: list[str], synopsis: bool) -> list[str]:
    """The CommitPack pipeline: its own flags, then Apache Beam pipeline options for the rest."""
    pytest.importorskip("apache_beam")
    from apache_beam.options.pipeline_options import PipelineOptions

    from beam_pipelines import commitpack

    parser = commitpack.build_parser()
    args = commitpack.expand_revs(args)
    beam_args: list[str] = []
    error = _parse(lambda a: beam_args.extend(parser.parse_known_args(a)[1]), args)
    if error and not synopsis:
        return [error]
    problems = []
    if not synopsis:
        error = _parse(parser.parse_args, [a for a in args if a not in beam_args])
        problems += [error] if error else []
    options = PipelineOptions(beam_args)
    unknown = set(options.get_all_options(retain_unknown_options=True)) - set(
        options.get_all_options()
    )
    problems += [f"--{name}: neither a pipeline flag nor a Beam option" for name in unknown]
    return problems


def _positional_overrides(args: list[str]) -> list[str]:
    """The overrides the real parser sees (not a flag's value such as `--generate-mesh
    tensor=8`); every argument when the line does not parse on its own."""
    from octojax.cli import parse_args

    try:
        with contextlib.redirect_stderr(io.StringIO()):
            return list(getattr(parse_args(args), "overrides", None) or [])
    except SystemExit:
        return args


def _check_config(names: list[str], args: list[str]) -> list[str]:
    """`octojax train/plan/run`: the overrides load with the config the line names."""
    from octojax.config import ConfigError
    from octojax.pipeline.config import load_run_config
    from octojax.train.config import load_config

    config = args[args.index("--config") + 1] if "--config" in args else None
    if config is None and names[0] != "run":
        return []  # a fragment (`octojax train --reset`): its flags were checked
    overrides = [
        a for a in _positional_overrides([*names, *args]) if re.match(r"^[a-z_][\w.]*=", a)
        and a not in PLACEHOLDER_OVERRIDES
    ]  # fmt: skip
    if config is not None and not (REPO / config).is_file():
        return []  # a placeholder (configs/X.yaml): nothing to load
    try:
        if names[0] == "run":
            load_run_config(REPO / config if config else None, overrides)
        else:
            load_config(REPO / config, overrides)
    except ConfigError as e:
        return [str(e)]
    return []


def check(command: DocCommand) -> list[str]:
    """What no longer matches the code in one command line ([] when it all does)."""
    from eval.cli import build_parser as eval_parser
    from octojax.cli import build_parser, parse_args

    program, args = command.program()
    synopsis = command.argv()[1]
    if program in NOT_OURS:
        return []
    if program != "octojax" and (command.inline and not args or program not in PARSED):
        return [] if importlib.util.find_spec(program) else [f"no module {program}"]
    if program == "beam_pipelines.commitpack":
        return _check_beam(args, synopsis)
    parser = build_parser() if program == "octojax" else eval_parser()
    chain, names, rest = _walk(parser, args)
    if not names:
        return [f"no subcommand in {args}"] if args or not command.inline else []
    if names == ["commitpack"]:  # octojax hands every argument on to the pipeline
        error = _parse(parse_args, args)
        return ([error] if error else []) + _check_beam(rest, synopsis)
    if names == ["evaluate"]:
        return check(DocCommand(command.where, "python -m eval " + shlex.join(rest), True))
    if command.inline and not rest:
        return []  # a mention of the subcommand (`octojax convert export`), which exists
    problems = [f"{f}: no such flag of {' '.join(names)}" for f in _unknown_flags(chain, rest)]
    if not synopsis and not problems:
        error = _parse(parse_args if program == "octojax" else parser.parse_args, args)
        problems += [error] if error else []
    if program == "octojax" and names[0] in ("train", "plan", "run") and not problems:
        problems += _check_config(names, rest)
    return problems


@pytest.mark.parametrize("command", ALL, ids=[f"{c.where} {c.text[:40]}" for c in ALL])
def test_command_line_matches_the_code(command):
    assert check(command) == [], f"{command.where}: {command.text}"


def test_a_removed_flag_is_caught():
    """The check fails on a line with a flag the parser does not have (it can fail)."""
    bad = DocCommand("x", "octojax generate --model DIR --no-such-flag 3", inline=True)
    assert check(bad) == ["--no-such-flag: no such flag of generate"]
    bad = DocCommand("x", "octojax train --config configs/smoke.yaml train.stepz=3", inline=True)
    assert "train.stepz" in check(bad)[0]
    bad = DocCommand(
        "x", "python -m beam_pipelines.commitpack --source git --repoz R --output O", True
    )
    assert check(bad)


# ---- running the cheap ones ------------------------------------------------------------------


def find(where: str, start: str) -> DocCommand:
    """The command line of a doc file that starts so (the test fails if the docs lost it)."""
    hits = [c for c in ALL if c.where.startswith(where + ":") and c.text.startswith(start)]
    assert len(hits) == 1, f"{where}: no single command line starting {start!r}: {hits}"
    return hits[0]


def run(command: DocCommand, cwd: Path, subs: dict[str, str], timeout: int = 600):
    """Run the line's required form (no `[...]` parts), placeholders replaced by fixtures."""
    argv, _ = command.argv(optional=False)
    argv = [subs.get(a, a) for a in argv]
    program = ["-m", "octojax", *argv[1:]] if argv[0] == "octojax" else argv[1:]
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS=xla_flags(8))
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, *program], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip
    assert done.returncode == 0, f"{command.where}: {shlex.join(argv)}\n{done.stderr[-3000:]}"
    return done


def tiny_run(run_dir: Path, tmp: Path) -> None:
    """One training step of the smoke preset (1024 positions), a 300-token tokenizer beside it."""
    from helpers.train_helpers import small_config

    from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer
    from octojax.train.synthetic import SyntheticBatches
    from octojax.train.trainer import Trainer

    tok = train_bpe_tokenizer(octojax_source_corpus()[:40], tmp / "tok", vocab_size=300)
    data = {"tokenizer": str(tok), "seq_len": 32, "sources": [{"kind": "jsonl", "path": "x"}]}
    cfg = small_config(run_dir, model={"preset": "smoke"}, data=data)
    Trainer(cfg, data=SyntheticBatches(vocab_size=300, global_batch_size=8, seq_len=32)).run()


def git_repo(path: Path, name: str) -> None:
    """Three commits: an MIT license, a module, one in-place change."""
    path.mkdir(parents=True)
    git = ["git", "-C", str(path), "-c", "user.email=d@e.com", "-c", "user.name=D"]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    for message, rel, text in [
        (
            "Initial import",
            "LICENSE",
            "MIT License\n\nPermission is hereby granted, free of charge\n",
        ),
        ("Create the module", f"{name}.py", "def f(x):\n    return x\n"),
        ("Handle missing values in f", f"{name}.py", "def f(x=None):\n    return x or 0\n"),
    ]:
        (path / rel).write_text(text)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", message], check=True)


@pytest.mark.slow
def test_the_cheap_command_lines_run(tmp_path):
    (tmp_path / "configs").symlink_to(REPO / "configs")
    tiny_run(tmp_path / "runs" / "octocoder", tmp_path)

    run(find("README.md", "octojax convert export runs/octocoder"), tmp_path, {})
    hf = tmp_path / "ckpt" / "octocoder-hf"
    assert json.loads((hf / "config.json").read_text())["model_type"] == "gpt_bigcode"
    run(find("README.md", "octojax convert import /models/starcoder"), tmp_path,
        {"/models/starcoder": str(hf)})  # fmt: skip
    assert (tmp_path / "ckpt" / "starcoder" / "params").is_dir()

    prompts = [{"prompt": "def add(a, b):"}, {"prompt": "import os\n"}]
    (tmp_path / "p.jsonl").write_text("".join(json.dumps(p) + "\n" for p in prompts))
    run(find("docs/generation.md", "octojax generate --model DIR"), tmp_path, {"DIR": str(hf)})
    rows = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(rows) == 2 * 20, rows[:3]

    plan = run(
        find("docs/training.md", "octojax plan --config configs/octocoder.yaml"), tmp_path, {}
    )
    assert "fit" in plan.stdout, plan.stdout

    for name in ("proj1", "proj2"):
        git_repo(tmp_path / name, name)
    work = tmp_path / "work"
    work.mkdir()
    run(find("docs/commitpack.md", "python -m beam_pipelines.commitpack --source git --repos ../"),
        work, {})  # fmt: skip
    stats = json.loads((work / "out" / "cp" / "stats.json").read_text())
    assert stats["input"]["total"] == 6 and stats["accounting"]["ok"], stats


def test_data_md_gives_the_default_templates_of_the_code():
    """docs/data.md's table shows the templates as DataConfig has them (`\\n` written out)."""
    from octojax.data.config import DEFAULT_COMMIT_TEMPLATE, DEFAULT_INSTRUCTION_TEMPLATE

    text = (REPO / "docs" / "data.md").read_text()
    for key, template in [
        ("commit_template", DEFAULT_COMMIT_TEMPLATE),
        ("instruction_template", DEFAULT_INSTRUCTION_TEMPLATE),
    ]:
        row = re.search(rf"^\| `{key}` \| `([^`]*)` \|", text, re.M)
        assert row and row.group(1) == template.replace("\n", "\\n"), (key, row and row.group(1))
