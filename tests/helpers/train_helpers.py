"""Small trainer configs and synthetic data shared by the training tests."""

from octojax.train import config_from_dict
from octojax.train.synthetic import SyntheticBatches


def small_config(run_dir, **sections):
    """A test-preset, float32, one-step config with sync checkpoints and no export."""
    d = {
        "run_dir": str(run_dir),
        "model": {"preset": "test", "dtype": "float32"},
        "train": {"steps": 1, "global_batch_size": 8},
        "optimizer": {"lr": 1e-3, "warmup_steps": 0, "schedule": "constant", "eps": 1e-6},
        "checkpoint": {"every": 100, "async_save": False},
        "log": {"tensorboard": False, "progress": False},
        "export": {"hf": False},
    }
    for k, v in sections.items():
        d[k] = {**d.get(k, {}), **v} if isinstance(v, dict) else v
    return config_from_dict(d)


def data(seq_len=32, batch=8, seed=0):
    """Deterministic packed random batches for the test preset's 512-token vocabulary."""
    return SyntheticBatches(vocab_size=512, global_batch_size=batch, seq_len=seq_len, seed=seed)
