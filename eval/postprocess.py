"""Post-processing of model output, per language, exactly as bigcode-evaluation-harness does it.

Code: cut at the first stop sequence, then keep the first complete function (Python: everything
before the first non-indented line; brace languages: up to the brace that closes the function,
with Java's class adding one more level). Descriptions (HumanEvalExplain-describe): cut to the
docstring's length, then at the first stop sequence, and remove copied lines of the solution.
These rules are heuristics, not parsers: matching the harness byte for byte is the point, so
they are written out here rather than replaced with a real parser.
"""

from __future__ import annotations

from collections.abc import Iterable

BRACE_LANGUAGES = ("java", "js", "go", "cpp", "rust")


def cut_at_stop_sequences(text: str, stop_sequences: Iterable[str]) -> str:
    """Text before the earliest occurrence of any stop sequence."""
    for stop in stop_sequences:
        if stop and stop in text:
            text = text[: text.find(stop)]
    return text


def _open_braces(language: str) -> int:
    # A Java answer is a method inside `class Solution {`: one more brace to close.
    return 2 if language == "java" else 1


def is_complete(language: str, completion: str, stop_sequences: Iterable[str]) -> bool:
    """Whether generation could stop: a stop sequence appeared or the first function is closed.

    This is the harness's early-stopping check (`check_fn`); it never changes what
    post-processing keeps, only how much text is generated and then thrown away.
    """
    if any(s and s in completion for s in stop_sequences):
        return True
    if language == "python":
        return any(line.strip() and line[0] not in " \t" for line in completion.split("\n"))
    return completion.count("{") + _open_braces(language) == completion.count("}")


def keep_first_function(language: str, code: str) -> str:
    """Keep the completed body of the function the prompt opened (harness `remove_last_block`)."""
    if language == "python":
        lines = code.split("\n")
        for i, line in enumerate(lines):
            if line.strip() and line[0] not in " \t":
                return "\n".join(lines[:i])
        return code
    if language not in BRACE_LANGUAGES:
        raise ValueError(f"unknown language {language!r}")
    depth = _open_braces(language)
    for i, ch in enumerate(code):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        if depth == 0:
            return code[: i + 1]
    # The function never closed: keep up to the last closing brace (Java: also drop a main
    # method and close the class if exactly one brace is missing).
    if language == "java":
        main_pos = code.find("public static void main")
        if main_pos != -1:
            code = code[:main_pos] + "}"
        if "}" in code:
            code = code[: code.rfind("}")] + "}"
        if code.count("{") - 1 == code.count("}"):
            code += "\n}"
    elif "}" in code:
        code = code[: code.rfind("}")] + "}"
    return code


def postprocess_code(
    language: str, completion: str, code_prefix: str, stop_sequences: Iterable[str]
) -> str:
    """Final code as the harness holds it: code_prefix (right-stripped) + the cleaned completion.

    `completion` is the model's new text after the prompt; `code_prefix` is what the harness
    puts in front (the declaration for HumanEvalFix, the full `prompt` otherwise).
    """
    body = cut_at_stop_sequences(completion.rstrip(), stop_sequences)
    return code_prefix.rstrip() + keep_first_function(language, body)


def remove_copied_code(text: str, canonical_solution: str) -> str:
    """Remove lines of the solution longer than 20 characters that the description copies."""
    for line in canonical_solution.split("\n"):
        line = line.strip()
        if len(line) > 20 and line in text:
            text = text.replace(line, "")
    return text


def postprocess_description(
    completion: str, docstring: str, canonical_solution: str, stop_sequences: Iterable[str]
) -> str:
    """A HumanEvalExplain description: at most len(docstring) characters, no copied code."""
    text = completion.strip()[: len(docstring)]
    text = cut_at_stop_sequences(text, stop_sequences).rstrip()
    return remove_copied_code(text, canonical_solution)
