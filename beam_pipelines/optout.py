"""The Stack v1.2 opt-out list that CommitPack applies (data, no code).

Carried over from the OctoPack reference, ``dataset/commitpack/licenses_optout_langs.py``
(``opt_out_github_login_the_stack_12``): GitHub logins whose owners asked to be left out of The
Stack. The reference drops a commit when its ``repos`` holds exactly one repository and that
repository's owner (the part before "/") is in this list; the comparison is case-sensitive.
"""

from __future__ import annotations

# fmt: off
OPT_OUT_LOGINS: frozenset[str] = frozenset({
    "tomas", "bermannoah", "rtzoeller", "sdatkinson", "jtth", "benui-dev", "DrTimothyAldenDavis",
    "pranftw", "marcsances", "sitmo", "jucor", "digantamisra98", "przemb", "jisakiel",
    "kellycochran", "AkashM398", "MeSayan", "SWinxy", "zitterbewegung", "fredster33",
    "demangejeremy", "PPPI", "henilp105", "tobymcclean", "cynddl", "spate141", "plaaosert",
    "woylie", "alexkoster", "satyrnidae", "rclark", "zakkolar", "jimscard", "marjoleinF",
    "ghchinoy", "jmfadeley", "fuhrmanator", "stephen-three", "retro-ai", "abolouri",
    "matthewheath", "jollypolly123", "RJRauch", "ivansche",
})
# fmt: on
