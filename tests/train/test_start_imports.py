"""What a training or generation process imports before its first step: not torch (~2.5-4 s of
every `octojax train` / `octojax run` start where torch is installed, as it is in the test extra)."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = """
import sys
from pathlib import Path
from octojax.tokenizer import load_tokenizer, train_bpe_tokenizer
from octojax.train.metrics import MetricsLogger

out = Path(sys.argv[1])
train_bpe_tokenizer(["def f(x):\\n    return x + 1\\n"] * 20, out / "tok", vocab_size=300)
tok = load_tokenizer(out / "tok")  # a directory, as the trainer and the generator load it
log = MetricsLogger(out / "run", total_steps=2, start_step=0, tensorboard=True, progress=False)
log.writer.add_scalar("train/loss", 1.5, 1)
log.close()
print("torch" in sys.modules, type(tok).__name__, len(list((out / "run" / "tensorboard").glob("events.*"))))
"""


def test_tokenizer_and_tensorboard_writer_do_not_import_torch(tmp_path):
    (tmp_path / "run").mkdir()
    proc = subprocess.run([sys.executable, "-c", PROGRAM, str(tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    torch_imported, _, event_files = proc.stdout.split()[-3:]
    assert torch_imported == "False", "torch was imported (tokenizer or tensorboardX)"
    assert int(event_files) == 1
    # and torch is still importable afterwards in the same process (the import was only hidden)
    check = "from octojax.train.metrics import _summary_writer_class as c; c(); import torch"
    assert subprocess.run([sys.executable, "-c", check], cwd=REPO, timeout=300).returncode == 0
