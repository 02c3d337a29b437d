// Links the crates; programs use them through rustc --extern.
