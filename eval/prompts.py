"""Prompt templates for HumanEvalPack, as bigcode-evaluation-harness builds them.

Every template gets an instruction, an optional context (the code to fix or explain, or a
description) and a `prompt_base` (the code the answer starts with). The finished prompt is
stripped of surrounding white space, as the harness does, so a code prompt does not end in a
newline the model would otherwise have to continue awkwardly.
"""

from __future__ import annotations

TEMPLATES: tuple[str, ...] = ("octocoder", "octogeex", "starchat", "instruct", "continue")
DEFAULT_TEMPLATE = "octocoder"

# Templates that put the context before the instruction; the others put the instruction first.
_CONTEXT_FIRST = ("instruct", "continue")

# Extra stop sequences a template's chat format needs (the turn terminator).
TEMPLATE_STOP_SEQUENCES: dict[str, tuple[str, ...]] = {"starchat": ("<|end|>",)}


class TemplateError(ValueError):
    """The template is unknown or cannot be used for this task."""


def check_template(template: str) -> str:
    """Return the template name or raise TemplateError naming the choices."""
    if template not in TEMPLATES:
        raise TemplateError(
            f"unknown prompt template {template!r}; choose from {', '.join(TEMPLATES)}"
        )
    return template


def build_prompt(template: str, instruction: str, context: str | None, prompt_base: str) -> str:
    """Assemble one prompt; `context=None` means the instruction stands alone (Synthesize)."""
    check_template(template)
    if context is None:
        inp = instruction
    elif template in _CONTEXT_FIRST:
        inp = context + "\n" + instruction
    else:
        inp = instruction + "\n" + context

    if template == "continue":
        if context is not None:
            raise TemplateError(
                "the `continue` template only works for humanevalsynthesize; "
                "use `instruct` for HumanEvalFix and HumanEvalExplain"
            )
        prompt = prompt_base
    elif template == "instruct":
        prompt = inp + "\n\n" + prompt_base
    elif template == "octocoder":
        prompt = f"Question: {inp}\n\nAnswer:\n{prompt_base}"
    elif template == "octogeex":
        prompt = f"Question: {inp.strip()}\n\nAnswer:\n{prompt_base}"
    else:  # starchat (HuggingFaceH4/starchat-beta chat format, empty system turn)
        prompt = f"<|system|>\n<|end|>\n<|user|>\n{inp}<|end|>\n<|assistant|>\n{prompt_base}"
    return prompt.strip()
