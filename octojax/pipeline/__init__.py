"""`octojax run`: the whole OctoPack loop (data, tuning, evaluation, report) from one config."""
