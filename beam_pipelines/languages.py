"""Language of a file, of a repository, and the extension rules, after the OctoPack reference.

* :func:`language_of`: CommitPack gives a commit the language whose ending the new file's path
  ends with (``dataset/commitpack/scrape_github.py``, ``filter_extension``: a case-sensitive
  ``str.endswith`` over every ending of ``programming_languages.json``). Where two endings match
  (``.rst.txt`` and ``.txt``) the longer one wins. The reference's own language assignment
  (``licenses_optout_langs.py``, ``add_lang``) looks up ``path.split(".")[-1]`` (``"py"``) in a
  table keyed by ``".py"`` and so never matches; the published data set has real languages, so
  the ending match above is what we follow (docs/commitpack.md, "Reference choices").
* :func:`repo_language_selected`: CommitPack's SQL (``sql_1_commits_table_base.sql``) keeps
  commits of repositories whose GitHub language list holds one of 22 languages (``LIKE``
  patterns, ``Perl%`` included).
* :func:`ft_extension_allowed`: CommitPackFT (``commitpackft_filters1.py``) restricts the
  extension for ten languages and otherwise only asks for a dot in the path.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from beam_pipelines.language_table import PROGRAMMING_LANGUAGES

ENDING_TO_LANGUAGE: dict[str, str] = {
    ending: lang for lang, endings in PROGRAMMING_LANGUAGES.items() for ending in endings
}
"""Every file-name ending (``.py``, ``.C``, ``Makefile``) -> its language (853 entries)."""

# Endings grouped by their last dot-component, so a path is checked against a handful of
# candidates instead of all 853: a path ends with ".sh.in" only if its last component is "in".
_BY_LAST_COMPONENT: dict[str, tuple[str, ...]] = {}
for _ending in sorted(ENDING_TO_LANGUAGE, key=len, reverse=True):
    if _ending.startswith("."):
        _key = _ending.rsplit(".", 1)[1]
        _BY_LAST_COMPONENT[_key] = (*_BY_LAST_COMPONENT.get(_key, ()), _ending)
_UNDOTTED: tuple[str, ...] = tuple(e for e in ENDING_TO_LANGUAGE if not e.startswith("."))

REPO_LANGUAGE_PATTERNS: tuple[str, ...] = (
    "Python", "Java", "JavaScript", "HTML", "Common Lisp", "Shell", "R", "Perl%", "SQL", "C",
    "C#", "C++", "TypeScript", "Go", "Rust", "Swift", "PHP", "Dart", "Kotlin", "Matlab",
    "MATLAB", "Ruby",
)  # fmt: skip
"""The 22 ``lang_table.language_name LIKE ...`` patterns of sql_1_commits_table_base.sql."""

FT_LANG_TO_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "python": ("py",),
    "java": ("java",),
    "javascript": ("js",),
    "rust": ("rs",),
    "go": ("go",),
    "c++": ("cpp",),
    "c": ("c", "h"),
    "html": ("html",),
    "shell": ("sh", "bash", "zsh", "csh", "slurm"),
    "xml": ("xml",),
}
"""commitpackft_filters1.py ``LANG_TO_EXTENSIONS`` (keyed by the lower-cased language), written
without the leading dot: the reference compares ``path.split(".")[-1]`` (``"py"``) with these,
and its dotted entries (``".py"``) would drop every Python file, which the published data set
does not; its shell entries are already dot-less."""


def language_of(path: str) -> str | None:
    """The language of a file path (longest case-sensitive ending), or None when none matches."""
    candidates = _BY_LAST_COMPONENT.get(path.rsplit(".", 1)[1], ()) if "." in path else ()
    for ending in candidates:  # longest first
        if path.endswith(ending):
            return ENDING_TO_LANGUAGE[ending]
    for ending in _UNDOTTED:
        if path.endswith(ending):
            return ENDING_TO_LANGUAGE[ending]
    return None


def sql_like(pattern: str) -> re.Pattern[str]:
    """A SQL ``LIKE`` pattern as a regex (``%`` any run, ``_`` one character; case-sensitive)."""
    parts = ("." if c == "_" else ".*" if c == "%" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.DOTALL)


_REPO_LANGUAGE_RES = tuple(sql_like(p) for p in REPO_LANGUAGE_PATTERNS)


def repo_language_selected(languages: Iterable[str]) -> bool:
    """Whether a repository with these (GitHub) languages passes CommitPack's language join."""
    return _selected(frozenset(languages))


@functools.lru_cache(maxsize=4096)
def _selected(languages: frozenset[str]) -> bool:
    """Cached per language set: every commit of a repository asks about the same set."""
    return any(r.match(lang) for lang in languages for r in _REPO_LANGUAGE_RES)


def repo_languages(paths: Iterable[str]) -> set[str]:
    """Languages of a repository's files (its tree at HEAD): our stand-in for GitHub's
    ``languages`` table, which lists every language Linguist finds in the repository."""
    found = set()
    for path in paths:
        lang = language_of(path)
        if lang is not None:
            found.add(lang)
    return found


def ft_extension_allowed(path: str, lang: str) -> bool:
    """CommitPackFT's extension rule (commitpackft_filters1.py, after "hashtag filtering"): the
    path must contain a dot; for the ten languages of :data:`FT_LANG_TO_EXTENSIONS` the text after
    its last dot must be one of the language's extensions. The whole path is split, as there."""
    parts = path.split(".")
    if len(parts) < 2:
        return False
    allowed = FT_LANG_TO_EXTENSIONS.get(lang.lower())
    return allowed is None or parts[-1] in allowed
