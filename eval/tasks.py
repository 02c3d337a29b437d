"""The five HumanEvalPack tasks: prompt, stop sequences and post-processing per language.

Each task mirrors the bigcode-evaluation-harness task of the same name (`humanevalfixtests-python`
there is `Task("humanevalfix-tests", "python")` here); docs/evaluation.md lists what is matched.
An `Entry` is one row of a generations file: a problem, plus for explain-synthesize the one
description it is synthesized from (the harness expands every description into its own row).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eval.data import LANGUAGE_NAMES, normalize_language
from eval.postprocess import postprocess_code, postprocess_description
from eval.prompts import DEFAULT_TEMPLATE, TEMPLATE_STOP_SEQUENCES, build_prompt, check_template

FIX_TESTS = "humanevalfix-tests"
FIX_DOCS = "humanevalfix-docs"
EXPLAIN_DESCRIBE = "humanevalexplain-describe"
EXPLAIN_SYNTHESIZE = "humanevalexplain-synthesize"
SYNTHESIZE = "humanevalsynthesize"
TASKS: tuple[str, ...] = (FIX_TESTS, FIX_DOCS, EXPLAIN_DESCRIBE, EXPLAIN_SYNTHESIZE, SYNTHESIZE)

# Task names in bigcode-evaluation-harness (`--tasks {name}-{language}`).
HARNESS_NAMES: dict[str, str] = {
    FIX_TESTS: "humanevalfixtests",
    FIX_DOCS: "humanevalfixdocs",
    EXPLAIN_DESCRIBE: "humanevalexplaindescribe",
    EXPLAIN_SYNTHESIZE: "humanevalexplainsynthesize",
    SYNTHESIZE: "humanevalsynthesize",
}
_FROM_HARNESS = {v: k for k, v in HARNESS_NAMES.items()}

# Stop sequences per language (the harness's, from CodeGeeX); the end-of-text token is added always.
LANGUAGE_STOP_SEQUENCES: dict[str, tuple[str, ...]] = {
    "python": ("\nclass", "\ndef", "\n#", "\n@", "\nprint", "\nif", "\nassert"),
    "cpp": (),
    "js": (),
    "go": ("\n//", "\nfunc main(", "struct", "\nfunc"),
    "java": (),
    "rust": (),
}
END_OF_TEXT = "<|endoftext|>"
RUST_MAIN = "fn main(){}\n"


def normalize_task(name: str) -> str:
    """Accept our names and the harness's ("humanevalfixtests"), return ours."""
    key = name.strip().lower()
    if key in TASKS:
        return key
    if key in _FROM_HARNESS:
        return _FROM_HARNESS[key]
    raise ValueError(f"unknown task {name!r}; choose from {', '.join(TASKS)}")


def parse_tasks(spec: str | Sequence[str]) -> list[str]:
    """Parse "all" or a comma-separated list of task names (ours or the harness's)."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if not item.strip():
            continue
        names = TASKS if item.strip().lower() == "all" else (normalize_task(item),)
        out.extend(n for n in names if n not in out)
    if not out:
        raise ValueError("no task given")
    return out


@dataclass(frozen=True)
class Entry:
    """One row of a generations file: a problem, and for explain-synthesize its description."""

    problem: dict
    description: str | None = None
    description_index: int | None = None

    @property
    def task_id(self) -> str:
        return self.problem["task_id"]

    @property
    def label(self) -> str:
        """Unique name of the row, e.g. "Python/3" or "Python/3@d1" (description 1)."""
        if self.description_index is None:
            return self.task_id
        return f"{self.task_id}@d{self.description_index}"


class DescriptionsError(ValueError):
    """Descriptions for explain-synthesize are missing or do not fit the problems."""


@dataclass(frozen=True)
class Task:
    """One task in one language with one prompt template."""

    name: str
    language: str
    template: str = DEFAULT_TEMPLATE
    eos_token: str = END_OF_TEXT

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", normalize_task(self.name))
        object.__setattr__(self, "language", normalize_language(self.language))
        check_template(self.template)
        if self.template == "continue" and self.name != SYNTHESIZE:
            raise ValueError(
                "the `continue` template only works for humanevalsynthesize; "
                "use `instruct` for HumanEvalFix and HumanEvalExplain"
            )

    # ---- identity -------------------------------------------------------------------------
    @property
    def harness_name(self) -> str:
        """The harness's task name, e.g. "humanevalfixtests-python"."""
        return f"{HARNESS_NAMES[self.name]}-{self.language}"

    @property
    def executes(self) -> bool:
        """Whether outputs are programs to run (all but explain-describe, which makes text)."""
        return self.name != EXPLAIN_DESCRIBE

    @property
    def needs_descriptions(self) -> bool:
        return self.name == EXPLAIN_SYNTHESIZE

    # ---- prompts --------------------------------------------------------------------------
    def prompt_base(self, problem: dict) -> str:
        """The code the answer starts from: `prompt` (with docstring) or the bare declaration."""
        if self.name in (FIX_DOCS, SYNTHESIZE):
            return problem["prompt"]  # Rust's prompt already starts with fn main(){}
        if self.language == "rust":
            return RUST_MAIN + problem["declaration"]
        return problem["declaration"]

    def instruction(self, problem: dict) -> str:
        if self.name in (FIX_TESTS, FIX_DOCS):
            return f"Fix bugs in {problem['entry_point']}."
        if self.name == EXPLAIN_DESCRIBE:
            return (
                "Provide a concise natural language description of the code using at most "
                f"{len(problem['docstring'])} characters."
            )
        if self.name == EXPLAIN_SYNTHESIZE:
            return (
                f"Write functional code in {LANGUAGE_NAMES[self.language]} according to the "
                "description."
            )
        return problem["instruction"].strip()

    def prompt(self, entry: Entry | dict) -> str:
        """The full prompt for one entry (a bare problem dict is fine except for explain-synthesize)."""
        entry = entry if isinstance(entry, Entry) else Entry(entry)
        problem = entry.problem
        base = self.prompt_base(problem)
        instruction = self.instruction(problem)
        if self.name in (FIX_TESTS, FIX_DOCS):
            context = base + problem["buggy_solution"]
            if self.name == FIX_TESTS:
                context += "\n" + problem["test"]
            return build_prompt(self.template, instruction, context, base)
        if self.name == EXPLAIN_DESCRIBE:
            return build_prompt(
                self.template, instruction, base + problem["canonical_solution"], ""
            )
        if self.name == EXPLAIN_SYNTHESIZE:
            if entry.description is None:
                raise DescriptionsError(f"{entry.task_id}: explain-synthesize needs a description")
            return build_prompt(self.template, instruction, entry.description, base)
        return build_prompt(self.template, instruction, None, base)

    def stop_sequences(self) -> list[str]:
        """Stop sequences for generation and post-processing, in the harness's order."""
        stops = list(LANGUAGE_STOP_SEQUENCES[self.language])
        stops += TEMPLATE_STOP_SEQUENCES.get(self.template, ())
        for token in (END_OF_TEXT, self.eos_token):
            if token and token not in stops:
                stops.append(token)
        return stops

    # ---- post-processing ------------------------------------------------------------------
    def code_prefix(self, problem: dict) -> str:
        """What the harness puts before a cleaned completion.

        Fix uses its prompt base; Synthesize and Explain-synthesize use the record's `prompt`,
        even though explain-synthesize prompts end in the bare declaration (harness behaviour).
        """
        if self.name in (FIX_TESTS, FIX_DOCS):
            return self.prompt_base(problem)
        return problem["prompt"]

    def postprocess(self, entry: Entry | dict, completion: str) -> str:
        """Clean the model's new text (without the prompt) into the string the harness stores."""
        entry = entry if isinstance(entry, Entry) else Entry(entry)
        problem = entry.problem
        if self.name == EXPLAIN_DESCRIBE:
            return postprocess_description(
                completion,
                problem["docstring"],
                problem["canonical_solution"],
                self.stop_sequences(),
            )
        return postprocess_code(
            self.language, completion, self.code_prefix(problem), self.stop_sequences()
        )

    def postprocess_full_text(self, entry: Entry | dict, full_text: str) -> str:
        """Clean a raw harness generation (prompt + new text, as `--postprocess False` saves it)."""
        prompt = self.prompt(entry)
        return self.postprocess(entry, full_text[len(prompt) :])

    # ---- entries --------------------------------------------------------------------------
    def entries(
        self, problems: Sequence[dict], descriptions: Sequence[Sequence[str]] | None = None
    ) -> list[Entry]:
        """Rows of the generations file, in the harness's order.

        For explain-synthesize every description candidate of every problem is its own row
        (problem-major), as the harness's `get_dataset` expands them.
        """
        if not self.needs_descriptions:
            return [Entry(p) for p in problems]
        if descriptions is None:
            raise DescriptionsError(
                "humanevalexplain-synthesize needs the descriptions written by "
                "humanevalexplain-describe (--descriptions FILE)"
            )
        if len(descriptions) < len(problems):
            raise DescriptionsError(
                f"{len(descriptions)} description lists for {len(problems)} problems"
            )
        rows: list[Entry] = []
        for problem, candidates in zip(problems, descriptions):
            if not candidates:
                raise DescriptionsError(f"{problem['task_id']}: no description")
            rows.extend(Entry(problem, d, i) for i, d in enumerate(candidates))
        return rows
