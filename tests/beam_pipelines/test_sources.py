"""License detection, JSONL / BigQuery parsing (every dead-letter reason), the BigQuery SQL."""

from __future__ import annotations

import json

import pytest

from beam_pipelines.licenses import ALLOWED_LICENSES, LICENSE_FILE_RE, detect_license
from beam_pipelines.parsing import (
    DEAD_LETTER_REASONS,
    bigquery_row_to_outcome,
    dead_letter,
    parse_jsonl_line,
)
from beam_pipelines.schema import FIELDS

LICENSE_SNIPPETS = {
    "mit": "Permission is hereby granted, free of charge, to any person obtaining a copy of "
    "this software",
    "apache-2.0": "Apache License\n   Version 2.0, January 2004\n http://www.apache.org/licenses/",
    "bsd-3-clause": "Redistribution and use in source and binary forms, with or without "
    "modification, are permitted ... Neither the name of the copyright holder nor the names of "
    "its contributors may be used to endorse or promote products derived from this software",
    "bsd-2-clause": "Redistribution and use in source and binary forms, with or without "
    "modification, are permitted provided that the following conditions are met:",
    "gpl-2.0": "GNU GENERAL PUBLIC LICENSE\n Version 2, June 1991",
    "gpl-3.0": "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007",
    "agpl-3.0": "GNU AFFERO GENERAL PUBLIC LICENSE\n Version 3, 19 November 2007",
    "lgpl-2.1": "GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999",
    "mpl-2.0": "Mozilla Public License Version 2.0\n==================================",
    "isc": "ISC License\n\nPermission to use, copy, modify, and/or distribute this software for "
    "any purpose with or without fee is hereby granted",
    "unlicense": "This is free and unencumbered software released into the public domain.",
    "cc0-1.0": "Creative Commons Legal Code\n\nCC0 1.0 Universal",
    "epl-1.0": "Eclipse Public License - v 1.0\n\nTHE ACCOMPANYING PROGRAM IS PROVIDED",
    "artistic-2.0": "The Artistic License 2.0\n\n Copyright (c) 2000-2006",
}


@pytest.mark.parametrize(("spdx", "text"), sorted(LICENSE_SNIPPETS.items()))
def test_detect_license(spdx, text):
    assert detect_license(text) == spdx


def test_unknown_license_text():
    assert detect_license("Copyright 2020. All rights reserved.") is None


def test_license_file_names():
    for name in ("LICENSE", "LICENSE.md", "licence.txt", "COPYING", "LICENSE-MIT", "UNLICENSE"):
        assert LICENSE_FILE_RE.match(name), name
    for name in ("README.md", "license_checker.py", "src"):
        assert not LICENSE_FILE_RE.match(name), name
    assert len(ALLOWED_LICENSES) == 12


GOOD = {
    "commit": "a" * 40,
    "old_file": "m.py",
    "new_file": "m.py",
    "old_contents": "a = 1\n",
    "new_contents": "a = 2\n",
    "subject": "Change the value of a",
    "message": "Change the value of a\n",
    "lang": "Python",
    "license": "mit",
    "repos": "x/y",
}


def test_jsonl_good_line():
    kind, rec = parse_jsonl_line(json.dumps(GOOD).encode(), "f.jsonl")
    assert kind == "record" and rec == GOOD


def test_jsonl_repos_list_and_missing_subject_are_normalised():
    obj = {k: v for k, v in GOOD.items() if k not in ("subject", "lang")}
    obj["repos"] = ["x/y", "z/w"]
    kind, rec = parse_jsonl_line(json.dumps(obj).encode(), "f.jsonl")
    assert kind == "record"
    assert rec["repos"] == "x/y,z/w" and rec["subject"] == "Change the value of a"
    assert rec["lang"] == ""


@pytest.mark.parametrize(
    ("line", "reason", "detail"),
    [
        (b"{oops", "malformed_json", "Expecting"),
        (b'"a string"', "malformed_json", "not an object"),
        (b"\xff\xfe{}", "invalid_utf8", "not UTF-8"),
        (json.dumps({**GOOD, "lang": None}).encode(), "invalid_type", "lang=NoneType"),
        (
            json.dumps({k: v for k, v in GOOD.items() if k != "commit"}).encode(),
            "missing_field",
            "commit",
        ),
        (json.dumps({**GOOD, "old_contents": "x" * 500}).encode(), "oversize", "limit 400"),
    ],
)
def test_jsonl_dead_letters(line, reason, detail):
    kind, dead = parse_jsonl_line(line, "gs://bucket/part.jsonl.gz", max_record_bytes=400)
    assert kind == "dead"
    assert dead["reason"] == reason
    assert detail in dead["detail"]
    assert dead["source"] == "gs://bucket/part.jsonl.gz"
    json.dumps(dead)  # serialisable
    assert "raw" in dead or "raw_base64" in dead


def test_dead_letter_reasons_are_closed_set():
    with pytest.raises(ValueError, match="unknown dead-letter reason"):
        dead_letter("whatever", "s", "d")
    assert "internal_error" in DEAD_LETTER_REASONS


BQ_ROW = {
    "commit": "b" * 40,
    "subject": "Change the value of a",
    "message": "Change the value of a\n",
    "n_parents": 1,
    "old_path": "m.py",
    "new_path": "m.py",
    "old_mode": 33188,
    "new_mode": 33261,
    "license": "MIT",
    "repos": "x/y,z/w",
    "old_contents": "a = 1\n",
    "new_contents": "a = 2\n",
    "old_binary": False,
    "new_binary": False,
}


def test_bigquery_row_to_record():
    kind, rec = bigquery_row_to_outcome(BQ_ROW)
    assert kind == "record"
    assert {f: rec[f] for f in FIELDS}["license"] == "mit"
    assert rec["_changes"][0]["old_mode"] == "100644"
    assert rec["_changes"][0]["new_mode"] == "100755"
    assert rec["_parents"] == 1


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"new_binary": True}, "binary"),
        ({"old_contents": None}, "missing_field"),
        ({"message": None}, "missing_field"),
        ({"subject": 5}, "invalid_type"),
    ],
)
def test_bigquery_dead_letters(overrides, reason):
    kind, dead = bigquery_row_to_outcome({**BQ_ROW, **overrides})
    assert kind == "dead" and dead["reason"] == reason
    assert dead["source"] == f"bigquery:{'b' * 40}"
