"""The BigQuery SQL that reads raw commits from ``bigquery-public-data.github_repos`` (no Beam).

The paper's CommitPack started from this dataset (commits up to 2016). The query does the
structural part of the reference SQL (OctoPack ``dataset/commitpack/sql/sql_1`` .. ``sql_5``)
inside BigQuery so that only candidate rows leave it:

* sql_4 + sql_5: a commit is kept when exactly one entry of its ``difference`` is modified in place
  (``old_path = new_path``, both non-NULL); files added, deleted or renamed beside it do not count.
* sql_1: message length, the repository's license (``licenses`` table, allow-list) and its
  GitHub languages (``languages`` table, the 22 ``LIKE`` patterns of
  :data:`beam_pipelines.languages.REPO_LANGUAGE_PATTERNS`).
* sql_2: one row per (commit, license), ``repos`` the sorted distinct repositories.
* ``licenses_optout_langs.py``: The Stack's opt-out list (:data:`beam_pipelines.optout.OPT_OUT_LOGINS`)
  drops a commit whose ``repos`` is one repository of an opted-out owner.

The message-text rules (boring messages, ``merge%``) run in Beam, where they are counted. Contents
come from the ``contents`` table by blob id (it holds only a snapshot of files under 1 MiB, so
many commits have no contents there: those rows arrive with NULL contents and become
``missing_field`` dead letters; the paper fetched contents from GitHub instead).

Every argument is validated or escaped before it is put into SQL (no injection through dataset
names, license ids, language patterns or logins).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from beam_pipelines.filters_commitpack import MAX_MESSAGE_CHARS, MIN_MESSAGE_CHARS
from beam_pipelines.languages import REPO_LANGUAGE_PATTERNS
from beam_pipelines.licenses import ALLOWED_LICENSES
from beam_pipelines.optout import OPT_OUT_LOGINS

DEFAULT_DATASET = "bigquery-public-data.github_repos"
_DATASET_RE = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]\.[A-Za-z_][A-Za-z0-9_]{0,1023}$")
_LICENSE_RE = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")

ROW_FIELDS = (
    "commit",
    "subject",
    "message",
    "n_parents",
    "old_path",
    "new_path",
    "old_mode",
    "new_mode",
    "license",
    "repos",
    "old_contents",
    "new_contents",
    "old_binary",
    "new_binary",
)
"""Columns of every row the query returns."""

_STRING_ESCAPES = {"\\": "\\\\", "'": "\\'", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def sql_string(value: str) -> str:
    """``value`` as a single-quoted BigQuery string literal: backslash, quote and control
    characters escaped, so no value can end the literal early."""
    out = []
    for char in value:
        if char in _STRING_ESCAPES:
            out.append(_STRING_ESCAPES[char])
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\x{ord(char):02x}")
        else:
            out.append(char)
    return "'" + "".join(out) + "'"


def _string_list(values: Iterable[str], what: str) -> str:
    """Sorted, de-duplicated values as a comma-separated list of literals (refuses an empty one:
    ``IN ()`` is a syntax error and an empty allow-list would select nothing)."""
    items = sorted(set(values))
    if not items:
        raise ValueError(f"the {what} list is empty")
    return ", ".join(sql_string(v) for v in items)


def _check_args(
    dataset: str, licenses: list[str], limit: int | None, sample_percent: float | None
) -> None:
    """Raise ``ValueError`` for a dataset id, license id, limit or sample that is not valid."""
    if not _DATASET_RE.match(dataset):
        raise ValueError(f"not a BigQuery 'project.dataset' id: {dataset!r}")
    if not licenses:
        raise ValueError("the license allow-list is empty")
    for lic in licenses:
        if not _LICENSE_RE.match(lic):
            raise ValueError(f"not a license id: {lic!r}")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if sample_percent is not None and not 0 < float(sample_percent) <= 100:
        raise ValueError(f"sample_percent must be in (0, 100], got {sample_percent!r}")


def _repos_cte(dataset: str, licenses: str, languages: Iterable[str]) -> str:
    """sql_1's joins: repositories with an allowed license and one of the selected languages."""
    like = "\n    OR ".join(f"lang.name LIKE {sql_string(p)}" for p in sorted(set(languages)))
    if not like:
        raise ValueError("the repository language list is empty")
    return f"""\
selected_repos AS (
  SELECT DISTINCT l.repo_name
  FROM `{dataset}.languages` AS l, UNNEST(l.language) AS lang
  WHERE {like}
),
licensed_repos AS (
  SELECT DISTINCT lic.repo_name, lic.license
  FROM `{dataset}.licenses` AS lic
  JOIN selected_repos AS s ON s.repo_name = lic.repo_name
  WHERE lic.license IN ({licenses})
)"""


def _one_in_place_cte(dataset: str, sample: str) -> str:
    """sql_4 + sql_5: single-parent commits with exactly one in-place entry in ``difference``,
    one row per commit carrying that entry; sql_1's message length."""
    return f"""\
one_in_place AS (
  SELECT
    c.commit,
    c.subject,
    c.message,
    ARRAY_LENGTH(c.parent) AS n_parents,
    d.old_path AS old_path,
    d.new_path AS new_path,
    d.old_mode AS old_mode,
    d.new_mode AS new_mode,
    d.old_sha1 AS old_sha1,
    d.new_sha1 AS new_sha1,
    c.repo_name AS repo_names
  FROM `{dataset}.commits`{sample} AS c, UNNEST(c.difference) AS d
  WHERE ARRAY_LENGTH(c.parent) = 1
    AND NOT IFNULL(c.difference_truncated, FALSE)
    AND LENGTH(c.message) > {MIN_MESSAGE_CHARS}
    AND LENGTH(c.message) < {MAX_MESSAGE_CHARS}
    AND d.old_path = d.new_path
    AND (SELECT COUNT(*) FROM UNNEST(c.difference) AS x WHERE x.old_path = x.new_path) = 1
)"""


def _kept_cte(logins: str) -> str:
    """sql_2's grouping by (commit, license) with the distinct sorted repositories, then the
    opt-out rule on that merged list (one repository, owner opted out: dropped)."""
    return f"""\
commit_repos AS (
  SELECT DISTINCT
    o.commit, r.repo_name, SPLIT(r.repo_name, '/')[SAFE_OFFSET(0)] AS owner, r.license
  FROM one_in_place AS o, UNNEST(o.repo_names) AS repo
  JOIN licensed_repos AS r ON r.repo_name = repo
),
kept AS (
  SELECT commit, license, STRING_AGG(repo_name, ',' ORDER BY repo_name) AS repos
  FROM commit_repos
  GROUP BY commit, license
  HAVING NOT (COUNT(*) = 1 AND MIN(owner) IN ({logins}))
)"""


_FINAL_SELECT = """\
SELECT
  o.commit,
  o.subject,
  o.message,
  o.n_parents,
  o.old_path,
  o.new_path,
  o.old_mode,
  o.new_mode,
  k.license,
  k.repos,
  old_c.content AS old_contents,
  new_c.content AS new_contents,
  old_c.binary AS old_binary,
  new_c.binary AS new_binary
FROM kept AS k
JOIN one_in_place AS o ON o.commit = k.commit
LEFT JOIN `{dataset}.contents` AS old_c ON old_c.id = o.old_sha1
LEFT JOIN `{dataset}.contents` AS new_c ON new_c.id = o.new_sha1{limit}
"""


def build_commits_query(
    dataset: str = DEFAULT_DATASET,
    licenses: Iterable[str] = ALLOWED_LICENSES,
    limit: int | None = None,
    sample_percent: float | None = None,
    repo_languages: Iterable[str] = REPO_LANGUAGE_PATTERNS,
    opt_out_logins: Iterable[str] = OPT_OUT_LOGINS,
) -> str:
    """Standard-SQL query returning one row per (commit, license) with ``ROW_FIELDS``.

    ``sample_percent`` uses ``TABLESAMPLE SYSTEM`` on the commits table (cheap trial runs);
    ``limit`` caps the row count. ``repo_languages`` are ``LIKE`` patterns on GitHub's language
    names, ``opt_out_logins`` owners whose single-repository commits are dropped.
    """
    license_list = sorted({lic.lower() for lic in licenses})
    _check_args(dataset, license_list, limit, sample_percent)
    sample = f" TABLESAMPLE SYSTEM ({float(sample_percent)} PERCENT)" if sample_percent else ""
    ctes = (
        _repos_cte(dataset, _string_list(license_list, "license"), repo_languages),
        _one_in_place_cte(dataset, sample),
        _kept_cte(_string_list(opt_out_logins, "opt-out login")),
    )
    final = _FINAL_SELECT.format(dataset=dataset, limit=f"\nLIMIT {limit}" if limit else "")
    return "WITH " + ",\n".join(ctes) + "\n" + final
