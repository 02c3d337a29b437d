"""The BigQuery SQL that reads raw commits from ``bigquery-public-data.github_repos`` (no Beam).

The paper's CommitPack started from this dataset (commits up to 2016). The query does the cheap,
structural part of the CommitPack filters inside BigQuery (one parent, exactly one changed file
modified in place, message length, license allow-list via the ``licenses`` table) so that only
candidate rows leave BigQuery; the other rules run in Beam. Contents come from the ``contents``
table by blob id (it holds only a snapshot of files under 1 MiB, so many commits have no contents
there: those rows arrive with NULL contents and become ``missing_field`` dead letters; the paper
fetched contents from GitHub instead).

Every argument is validated before it is put into SQL (no injection through dataset names or
license ids).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from beam_pipelines.filters_commitpack import MAX_MESSAGE_CHARS, MIN_MESSAGE_CHARS
from beam_pipelines.licenses import ALLOWED_LICENSES

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


def build_commits_query(
    dataset: str = DEFAULT_DATASET,
    licenses: Iterable[str] = ALLOWED_LICENSES,
    limit: int | None = None,
    sample_percent: float | None = None,
) -> str:
    """Standard-SQL query returning one row per (commit, license) with ``ROW_FIELDS``.

    ``sample_percent`` uses ``TABLESAMPLE SYSTEM`` on the commits table (cheap trial runs);
    ``limit`` caps the row count.
    """
    if not _DATASET_RE.match(dataset):
        raise ValueError(f"not a BigQuery 'project.dataset' id: {dataset!r}")
    license_list = sorted({lic.lower() for lic in licenses})
    if not license_list:
        raise ValueError("the license allow-list is empty")
    for lic in license_list:
        if not _LICENSE_RE.match(lic):
            raise ValueError(f"not a license id: {lic!r}")
    if limit is not None and (not isinstance(limit, int) or limit <= 0):
        raise ValueError(f"limit must be a positive int, got {limit!r}")
    if sample_percent is not None and not 0 < float(sample_percent) <= 100:
        raise ValueError(f"sample_percent must be in (0, 100], got {sample_percent!r}")

    sample = f" TABLESAMPLE SYSTEM ({float(sample_percent)} PERCENT)" if sample_percent else ""
    quoted = ", ".join(f"'{lic}'" for lic in license_list)
    limit_sql = f"\nLIMIT {limit}" if limit else ""
    return f"""\
WITH single_file_commits AS (
  SELECT
    c.commit,
    c.subject,
    c.message,
    ARRAY_LENGTH(c.parent) AS n_parents,
    d.old_path,
    d.new_path,
    d.old_mode,
    d.new_mode,
    d.old_sha1,
    d.new_sha1,
    c.repo_name AS repo_names
  FROM `{dataset}.commits`{sample} AS c, UNNEST(c.difference) AS d
  WHERE ARRAY_LENGTH(c.parent) = 1
    AND ARRAY_LENGTH(c.difference) = 1
    AND NOT IFNULL(c.difference_truncated, FALSE)
    AND d.old_path = d.new_path
    AND d.old_sha1 IS NOT NULL
    AND d.new_sha1 IS NOT NULL
    AND LENGTH(c.message) > {MIN_MESSAGE_CHARS}
    AND LENGTH(c.message) < {MAX_MESSAGE_CHARS}
),
licensed AS (
  SELECT
    s.commit,
    ANY_VALUE(s.subject) AS subject,
    ANY_VALUE(s.message) AS message,
    ANY_VALUE(s.n_parents) AS n_parents,
    ANY_VALUE(s.old_path) AS old_path,
    ANY_VALUE(s.new_path) AS new_path,
    ANY_VALUE(s.old_mode) AS old_mode,
    ANY_VALUE(s.new_mode) AS new_mode,
    ANY_VALUE(s.old_sha1) AS old_sha1,
    ANY_VALUE(s.new_sha1) AS new_sha1,
    l.license,
    STRING_AGG(DISTINCT repo, ',' ORDER BY repo) AS repos
  FROM single_file_commits AS s, UNNEST(s.repo_names) AS repo
  JOIN `{dataset}.licenses` AS l ON l.repo_name = repo
  WHERE l.license IN ({quoted})
  GROUP BY s.commit, l.license
)
SELECT
  k.commit,
  k.subject,
  k.message,
  k.n_parents,
  k.old_path,
  k.new_path,
  k.old_mode,
  k.new_mode,
  k.license,
  k.repos,
  old_c.content AS old_contents,
  new_c.content AS new_contents,
  old_c.binary AS old_binary,
  new_c.binary AS new_binary
FROM licensed AS k
LEFT JOIN `{dataset}.contents` AS old_c ON old_c.id = k.old_sha1
LEFT JOIN `{dataset}.contents` AS new_c ON new_c.id = k.new_sha1{limit_sql}
"""
