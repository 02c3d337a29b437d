"""Spot generations scored as the wrong language (e.g. a Python file scored with --language js).

Such a run fails every program and reports pass@k = 0 with nothing pointing at the cause. Before
executing, `mismatch_warning` guesses each sample's language from unambiguous syntax (and, for
Python, whether it parses at all); when most samples do not look like the stated language but
like one other, it returns a warning naming the file. A cheap heuristic over at most
`MAX_CHECKED` samples: it never changes a verdict, it only explains a likely zero.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Sequence

from eval.data import LANGUAGE_NAMES

MAX_CHECKED = 400

# Line-level syntax that is characteristic of one language among the six (multiline regexes).
_MARKERS: dict[str, tuple[str, ...]] = {
    "python": (
        r"^\s*def \w+\(.*\)\s*(->\s*[^:{]+)?:\s*$",
        r"^\s*(el)?if .+:\s*$",
        r"^\s*for \w+(, *\w+)* in .+:\s*$",
        r"^\s*(from \w[\w.]* )?import \w[\w.]*( as \w+)?\s*$",
        r'^\s*"""',
    ),
    "js": (
        r"^\s*(const|let|var) \w+\s*=",
        r"\bfunction\s*\w*\s*\(",
        r"=>",
        r"\bconsole\.\w+\(",
        r"===|!==",
    ),
    "cpp": (
        r"^\s*#include\s*[<\"]",
        r"\bstd::|\busing namespace std\b",
        r"\bvector<",
        r"^\s*(int|bool|string|float|double|void)\s+\w+\s*\(",
    ),
    "java": (
        r"\bpublic\s+(static\s+)?(class|\w+(<.*>)?\s+\w+\s*\()",
        r"^\s*import java\.",
        r"\bSystem\.out\.",
        r"\bnew\s+(ArrayList|HashMap|StringBuilder)\b",
    ),
    "go": (
        r"^\s*func (\(\w+ \*?\w+\) )?\w+\(.*\)",
        r"^\s*package \w+",
        r"\w+\s*:=",
        r"^\s*import \($",
        r"\bfmt\.\w+\(",
    ),
    "rust": (
        r"^\s*(pub )?fn \w+(<.*>)?\(.*\)",
        r"\blet (mut )?\w+(: [^=]+)?\s*=",
        r"\bVec<|&str\b|\bString::",
        r"^\s*use \w+(::\w+)+;",
        r"\w+!\(",
    ),
}
_COMPILED = {lang: [re.compile(p, re.M) for p in ps] for lang, ps in _MARKERS.items()}


def _parses_as_python(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def guess_language(code: str) -> str | None:
    """The language whose characteristic syntax `code` shows most, or None when unclear.

    Python counts only when the text parses as Python: brace languages never do, so Python's
    markers are decisive, and a Python-looking text that does not parse is not called Python.
    """
    if not code.strip():
        return None
    scores = {lang: sum(1 for rx in rxs if rx.search(code)) for lang, rxs in _COMPILED.items()}
    if scores["python"] and _parses_as_python(code):
        return "python"
    scores["python"] = 0
    best = max(scores.values())
    leaders = [lang for lang, s in scores.items() if s == best]
    return leaders[0] if best >= 2 and len(leaders) == 1 else None


def mismatch_warning(where: str, language: str, rows: Sequence[Sequence[str]]) -> str | None:
    """A one-line warning when most samples of `rows` look like a language other than `language`.

    Fires when over half of the (non-empty) checked samples are guessed as one other language
    and at most a tenth as the stated one; None otherwise.
    """
    samples = [s for row in rows for s in row if s.strip()][:MAX_CHECKED]
    if not samples:
        return None
    guesses = Counter(guess_language(s) for s in samples)
    other, count = max(
        ((lang, n) for lang, n in guesses.items() if lang not in (None, language)),
        key=lambda item: item[1],
        default=(None, 0),
    )
    if other is None or 2 * count <= len(samples) or 10 * guesses[language] > len(samples):
        return None
    return (
        f"warning: {where}: scored as {LANGUAGE_NAMES[language]}, but {count} of {len(samples)} "
        f"programs look like {LANGUAGE_NAMES[other]} and would fail to compile or run as "
        f"{LANGUAGE_NAMES[language]}; did you mean --language {other}?"
    )
