"""Detect a repository's license (lower-case SPDX id) from the text of its LICENSE/COPYING file.

CommitPack keeps commits from permissively licensed repositories only (:data:`ALLOWED_LICENSES`,
the paper's Table 5, as lower-case SPDX ids like the Hugging Face dataset's ``license`` field).

Why hand-written: the full matchers (ScanCode, GitHub's Ruby ``licensee``) are heavy or not Python;
license texts are long fixed documents, so a few distinctive phrases per license, checked in an
order where more specific licenses win (AGPL before GPL, BSD-3 before BSD-2), identify them well.
Unrecognised text yields ``None`` (the record's ``license`` is then the empty string).
"""

from __future__ import annotations

import re

ALLOWED_LICENSES: frozenset[str] = frozenset(
    {
        "mit",
        "artistic-2.0",
        "isc",
        "cc0-1.0",
        "epl-1.0",
        "mpl-2.0",
        "unlicense",
        "apache-2.0",
        "bsd-3-clause",
        "agpl-3.0",
        "lgpl-2.1",
        "bsd-2-clause",
    }
)
"""The CommitPack license allow-list (lower-case SPDX ids)."""

LICENSE_FILE_RE = re.compile(
    r"^(?:licen[cs]e|copying|unlicense)(?:[-_.][a-z0-9]+)?(?:\.(?:md|txt|rst|markdown))?$",
    re.IGNORECASE,
)
"""Root file names that hold a license text (LICENSE, LICENSE.md, COPYING, LICENSE-MIT, ...)."""

# (spdx id, phrases that must all occur in the normalised text); first match wins.
_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("agpl-3.0", ("gnu affero general public license", "version 3")),
    ("lgpl-2.1", ("gnu lesser general public license", "version 2.1")),
    ("lgpl-3.0", ("gnu lesser general public license", "version 3")),
    ("lgpl-2.0", ("gnu library general public license", "version 2")),
    ("gpl-3.0", ("gnu general public license", "version 3")),
    ("gpl-2.0", ("gnu general public license", "version 2")),
    ("apache-2.0", ("apache license", "version 2.0")),
    ("mpl-2.0", ("mozilla public license", "2.0")),
    ("mpl-1.1", ("mozilla public license", "1.1")),
    ("epl-2.0", ("eclipse public license", "2.0")),
    ("epl-1.0", ("eclipse public license", "1.0")),
    ("unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("cc0-1.0", ("cc0 1.0 universal",)),
    ("artistic-2.0", ("the artistic license 2.0",)),
    ("bsl-1.0", ("boost software license", "version 1.0")),
    ("wtfpl", ("do what the fuck you want to",)),
    (
        "isc",
        ("permission to use, copy, modify, and", "distribute this software for any purpose"),
    ),
    ("mit", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    (
        "bsd-4-clause",
        ("redistribution and use in source and binary forms", "all advertising materials"),
    ),
    ("bsd-3-clause", ("redistribution and use in source and binary forms", "endorse or promote")),
    ("bsd-2-clause", ("redistribution and use in source and binary forms",)),
    (
        "zlib",
        ("provided 'as-is', without any express or implied warranty", "plainly marked"),
    ),
)


def _normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("`", "'")
    text = re.sub(r"[*#>]", " ", text)  # markdown decoration
    return re.sub(r"\s+", " ", text)


def detect_license(text: str) -> str | None:
    """The lower-case SPDX id of a license text, or ``None`` when not recognised."""
    norm = _normalise(text)
    for spdx, phrases in _RULES:
        if all(phrase in norm for phrase in phrases):
            return spdx
    return None


def license_file_priority(name: str) -> tuple[int, str]:
    """Sort key over candidate file names: plain LICENSE first, then LICENCE, COPYING, others."""
    base = name.lower()
    for rank, prefix in enumerate(("license", "licence", "copying", "unlicense")):
        if base.split(".")[0] == prefix:
            return (rank, base)
    return (9, base)
