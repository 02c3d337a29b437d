"""The BigQuery query: its clauses, escaping, and its logic run on in-memory tables (sqlite3).

BigQuery cannot be reached here, so the generated SQL is translated mechanically into SQLite
(``UNNEST`` -> ``json_each`` over JSON-encoded arrays, BigQuery functions registered in Python)
and run on small tables shaped like ``bigquery-public-data.github_repos``. Only syntax is
rewritten; every join, WHERE and HAVING condition is the generated one.
"""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

from beam_pipelines.bigquery_query import ROW_FIELDS, build_commits_query, sql_string
from beam_pipelines.languages import REPO_LANGUAGE_PATTERNS
from beam_pipelines.licenses import ALLOWED_LICENSES
from beam_pipelines.optout import OPT_OUT_LOGINS

DS = "bigquery-public-data.github_repos"


def test_query_clauses():
    sql = build_commits_query(limit=100, sample_percent=1.5)
    assert f"`{DS}.commits` TABLESAMPLE SYSTEM (1.5 PERCENT)" in sql
    assert f"`{DS}.licenses`" in sql and f"`{DS}.languages`" in sql
    assert sql.count(f"`{DS}.contents`") == 2
    assert "ARRAY_LENGTH(c.parent) = 1" in sql and "d.old_path = d.new_path" in sql
    assert "ARRAY_LENGTH(c.difference)" not in sql  # other added/deleted files are allowed
    assert "WHERE x.old_path = x.new_path) = 1" in sql
    assert "LENGTH(c.message) > 5" in sql and "LENGTH(c.message) < 10000" in sql
    assert "lic.license IN ('agpl-3.0', 'apache-2.0'," in sql
    assert all(f"'{lic}'" in sql for lic in ALLOWED_LICENSES)
    assert len(REPO_LANGUAGE_PATTERNS) == 22
    assert all(f"lang.name LIKE '{p}'" in sql for p in REPO_LANGUAGE_PATTERNS)
    assert all(f"'{login}'" in sql for login in OPT_OUT_LOGINS)
    assert "HAVING NOT (COUNT(*) = 1 AND MIN(owner) IN (" in sql
    assert sql.rstrip().endswith("LIMIT 100")
    select = sql[sql.rindex("SELECT") :]
    for column in ROW_FIELDS:
        assert re.search(rf"\.{column}(,|\n)| AS {column}\b", select), column


def test_query_defaults_and_validation():
    sql = build_commits_query()
    assert "LIMIT" not in sql and "TABLESAMPLE" not in sql
    assert "`my-project.mirror.commits`" in build_commits_query(dataset="my-project.mirror")
    with pytest.raises(ValueError, match="dataset"):
        build_commits_query(dataset="x`; DROP TABLE y; --")
    with pytest.raises(ValueError, match="license"):
        build_commits_query(licenses=["mit', 'x"])
    with pytest.raises(ValueError, match="empty"):
        build_commits_query(licenses=[])
    with pytest.raises(ValueError, match="language"):
        build_commits_query(repo_languages=[])
    with pytest.raises(ValueError, match="opt-out"):
        build_commits_query(opt_out_logins=[])
    with pytest.raises(ValueError, match="limit"):
        build_commits_query(limit=0)
    with pytest.raises(ValueError, match="sample_percent"):
        build_commits_query(sample_percent=150)


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("Perl%", "'Perl%'"),
        ("O'Caml", r"'O\'Caml'"),
        ("a\\", r"'a\\'"),
        ("x'); DROP TABLE t; --", r"'x\'); DROP TABLE t; --'"),
        ("a\nb\x00", r"'a\nb\x00'"),
    ],
)
def test_sql_string_escapes(value, literal):
    assert sql_string(value) == literal


def test_hostile_parameters_stay_inside_literals():
    sql = build_commits_query(repo_languages=["C' OR TRUE OR '"], opt_out_logins=["a'b\\"])
    assert r"lang.name LIKE 'C\' OR TRUE OR \''" in sql
    assert r"MIN(owner) IN ('a\'b\\')" in sql
    # Outside string literals nothing of the values is left: drop every literal and look.
    bare = re.sub(r"'(?:[^'\\]|\\.)*'", "''", sql)
    assert "OR TRUE" not in bare and "a" + "'b" not in bare


# --------------------------------------------------------------------------- sqlite run


def _to_sqlite(sql: str) -> str:
    """BigQuery syntax -> SQLite: arrays are JSON text, ``UNNEST`` is ``json_each``."""
    for alias in re.findall(r"UNNEST\([\w.]+\) AS (\w+)", sql):
        if re.search(rf"\b{alias}\.\w", sql):  # array of structs: alias.field
            sql = re.sub(rf"\b{alias}\.(\w+)", rf"json_extract({alias}.value, '$.\1')", sql)
        else:  # array of scalars: the alias is the value
            sql = re.sub(rf"(?<!AS )\b{alias}\b(?!\.)", f"{alias}.value", sql)
    sql = sql.replace("UNNEST(", "json_each(").replace("ARRAY_LENGTH(", "json_array_length(")
    sql = re.sub(
        r"SPLIT\(([\w.]+), '(.)'\)\[SAFE_OFFSET\((\d+)\)\]", r"bq_split(\1, '\2', \3)", sql
    )
    sql = re.sub(r"STRING_AGG\((\w+), '(.)' ORDER BY \1\)", r"bq_string_agg(\1, '\2')", sql)
    return re.sub(r"\bcommit\b", '"commit"', sql)  # a keyword in SQLite, not in BigQuery


class _SortedStringAgg:
    """BigQuery's ``STRING_AGG(x, sep ORDER BY x)``."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.sep = ","

    def step(self, value: str, sep: str) -> None:
        self.values.append(value)
        self.sep = sep

    def finalize(self) -> str:
        return self.sep.join(sorted(self.values))


def _split(value: str, sep: str, index: int) -> str | None:
    parts = value.split(sep)
    return parts[index] if index < len(parts) else None


def _diff(old: str | None, new: str | None) -> dict:
    """One entry of ``commits.difference`` (blob ids derived from the paths)."""
    return {
        "old_path": old,
        "new_path": new,
        "old_mode": None if old is None else 33188,
        "new_mode": None if new is None else 33188,
        "old_sha1": None if old is None else f"old:{old}",
        "new_sha1": None if new is None else f"new:{new}",
    }


M, ADDED, DELETED = _diff("m.py", "m.py"), _diff(None, "a.py"), _diff("d.py", None)
RENAMED = _diff("r.py", "s.py")
MSG = "Fix the parser\n"

# commit -> (parents, difference, repos, message, truncated); the expected kept set is below.
COMMITS = {
    "one_modified": (1, [M], ["acme/lib"], MSG, None),
    "modified_plus_added_deleted_renamed": (
        1,
        [ADDED, M, DELETED, RENAMED],
        ["acme/lib"],
        MSG,
        False,
    ),
    "two_modified": (1, [M, _diff("n.py", "n.py")], ["acme/lib"], MSG, None),
    "only_added": (1, [ADDED], ["acme/lib"], MSG, None),
    "only_renamed": (1, [RENAMED, DELETED], ["acme/lib"], MSG, None),
    "merge": (2, [M], ["acme/lib"], MSG, None),
    "truncated": (1, [M], ["acme/lib"], MSG, True),
    "short_message": (1, [M], ["acme/lib"], "Fix", None),
    "gpl_repo": (1, [M], ["gnu/tool"], MSG, None),
    "notebook_repo": (1, [M], ["lab/notes"], MSG, None),
    "perl6_repo": (1, [M], ["raku/mod"], MSG, None),
    "lowercase_lang_repo": (1, [M], ["odd/case"], MSG, None),
    "opted_out_alone": (1, [M], ["tomas/x"], MSG, None),
    "opted_out_with_other": (1, [M], ["tomas/x", "acme/lib", "zed/fork"], MSG, None),
    "owner_case_differs": (1, [M], ["Tomas/y"], MSG, None),
}
KEPT = {
    "one_modified": "acme/lib",
    "modified_plus_added_deleted_renamed": "acme/lib",
    "perl6_repo": "raku/mod",
    "opted_out_with_other": "acme/lib,tomas/x,zed/fork",
    "owner_case_differs": "Tomas/y",
}
REPOS = {  # repo -> (license, GitHub languages)
    "acme/lib": ("mit", ["Python", "Shell"]),
    "zed/fork": ("mit", ["C++"]),
    "gnu/tool": ("gpl-3.0", ["C"]),
    "lab/notes": ("apache-2.0", ["Jupyter Notebook"]),
    "raku/mod": ("isc", ["Perl 6"]),
    "odd/case": ("mit", ["python"]),
    "tomas/x": ("mit", ["Go"]),
    "Tomas/y": ("mit", ["Go"]),
}


def _database() -> sqlite3.Connection:
    """In-memory tables named and shaped like the BigQuery dataset (arrays as JSON)."""
    db = sqlite3.connect(":memory:")
    db.execute("PRAGMA case_sensitive_like = ON")  # BigQuery's LIKE is case-sensitive
    db.create_function("bq_split", 3, _split)
    db.create_aggregate("bq_string_agg", 2, _SortedStringAgg)
    db.execute(f'CREATE TABLE "{DS}.commits" ("commit", subject, message, parent, difference, '
               "difference_truncated, repo_name)")  # fmt: skip
    db.execute(f'CREATE TABLE "{DS}.licenses" (repo_name, license)')
    db.execute(f'CREATE TABLE "{DS}.languages" (repo_name, language)')
    db.execute(f'CREATE TABLE "{DS}.contents" (id, content, binary)')
    for commit, (parents, diff, repos, message, truncated) in COMMITS.items():
        row = (commit, message.splitlines()[0], message, json.dumps(["p"] * parents),
               json.dumps(diff), truncated, json.dumps(repos))  # fmt: skip
        db.execute(f'INSERT INTO "{DS}.commits" VALUES (?, ?, ?, ?, ?, ?, ?)', row)
    for repo, (license_id, langs) in REPOS.items():
        db.execute(f'INSERT INTO "{DS}.licenses" VALUES (?, ?)', (repo, license_id))
        language = json.dumps([{"name": n, "bytes": 100} for n in langs])
        db.execute(f'INSERT INTO "{DS}.languages" VALUES (?, ?)', (repo, language))
    for blob in ("old:m.py", "new:m.py"):
        db.execute(f'INSERT INTO "{DS}.contents" VALUES (?, ?, ?)', (blob, blob + "\n", False))
    return db


def _run(sql: str) -> list[dict]:
    cursor = _database().execute(_to_sqlite(sql))
    names = [c[0] for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def test_query_logic_on_in_memory_tables():
    rows = _run(build_commits_query())
    assert {r["commit"]: r["repos"] for r in rows} == KEPT
    assert len(rows) == len(KEPT)
    assert [list(r) for r in rows[:1]] == [list(ROW_FIELDS)]
    for row in rows:  # the one in-place entry, with its contents
        assert (row["old_path"], row["new_path"], row["n_parents"]) == ("m.py", "m.py", 1)
        assert (row["old_contents"], row["new_contents"]) == ("old:m.py\n", "new:m.py\n")


def test_query_logic_follows_parameters():
    rows = _run(build_commits_query(licenses=["gpl-3.0"], opt_out_logins=["nobody"]))
    assert {r["commit"] for r in rows} == {"gpl_repo"}
    rows = _run(build_commits_query(repo_languages=["Jupyter%"], licenses=["apache-2.0"]))
    assert {r["commit"] for r in rows} == {"notebook_repo"}
    assert len(_run(build_commits_query(limit=2))) == 2
