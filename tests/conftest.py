"""Shared test setup: 8 fake CPU devices for mesh tests, one XLA compilation cache for the run,
paths to ../shared data."""

import os
import shutil
import tempfile
from pathlib import Path

from helpers.xla import xla_flags  # tests/ is on the pythonpath; imports no jax

# Must happen before jax is imported anywhere: mesh tests need 8 devices on one CPU; compile-lean
# CPU code (tests/helpers/xla.py).
os.environ.setdefault("XLA_FLAGS", xla_flags(8))
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# One persistent XLA compilation cache for the whole test run, shared through the environment by
# the xdist workers (started by this process after this line) and every process the tests start:
# a program compiled once (the train step of each host of a multi-host job, of a resumed run, of
# the next test on the same model) is loaded, not compiled, the next time. Its keys cover the
# program, the jax/XLA versions and the XLA flags, so a hit is what a fresh compile would give.
# Threshold 0: the small programs count too (48 parameter slices per checkpoint save, ~0.05 s
# each). Four of the multi-host tests took 244 s without it, 194 s with it (2026-12-03, idle). A
# cache dir set by the caller is used and kept; ours is removed at the end of the run.
_OWN_JAX_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_JAX_CACHE:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="octojax-tests-xla-cache-")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared beside the repository (HumanEvalPack, the instruction mix); skip if absent."""
    if not SHARED.is_dir():
        pytest.skip(f"{SHARED} is absent: shared test data is needed for this test")
    return SHARED


@pytest.fixture(scope="session")
def instruct_mix(shared_dir) -> Path:
    path = shared_dir / "data" / "octogeex_instruct_mix.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


@pytest.fixture(scope="session")
def humanevalpack_dir(shared_dir) -> Path:
    path = shared_dir / "humanevalpack"
    if not path.is_dir():
        pytest.skip(f"{path} is absent")
    return path


# The edit-test loop's subset, `python3 -m pytest -m quick` (README, "Tests"): modules whose tests
# take well under a second each and that together reach every package (octojax's config, model,
# plan, data, train loss and generation; beam_pipelines' filters and records; eval's prompts,
# post-processing, metrics and one compiled language). The full suite still runs everything.
QUICK_MODULES = {
    "beam_pipelines/test_filters.py",
    "beam_pipelines/test_bigquery_query.py",
    "data/test_config.py",
    "data/test_formatting.py",
    "eval/test_prompts.py",
    "eval/test_postprocess.py",
    "eval/test_metrics.py",
    "eval/test_no_jax.py",
    "eval/test_harness_format.py",
    "eval_execution/test_table_language.py",
    "model/test_attention_cudnn_path.py",
    "plan/test_hlo_cost.py",
    "plan/test_estimate_vs_tpu_compiler.py",
    "reliability/test_hf_config_types.py",
    "train/test_shipped_configs.py",
    "beam_pipelines/test_records.py",
    "data/test_bad_input.py",
    "eval/test_data.py",
    "generate/test_generation.py",
    "train/test_loss.py",
    "test_config.py",
    "test_quiet_start.py",
    "test_seams.py",
}


# The longest modules, longest first (seconds of a serial run on 2 idle cores, 2026-12-03). With
# `-n 2 --dist loadfile --no-loadscope-reorder` (.ci/run) each module runs whole on one worker
# (its module fixtures once) and workers take modules in this order: the long ones start first
# instead of one of them starting last and running alone. Only an ordering hint: a module missing
# here runs after these, in collection order.
LONGEST_MODULES_FIRST = (
    "eval_execution/test_ground_truth.py",  # ~500: the three HumanEvalPack sweeps
    "train/test_multihost.py",  # ~500
    "pipeline/test_run.py",  # ~470: the README's main job
    "train/test_resume.py",  # ~200
    "train/test_train_real_data.py",  # ~185
    "reliability/test_train_cli.py",  # ~180
    "test_core_install.py",  # ~145: a fresh venv
    "test_readme_commands.py",  # ~140
    "train/test_train_core.py",  # ~140
    "test_device_suite.py",  # ~140: an image-like venv
    "plan/test_tpu_compile.py",  # ~75
    "generate/test_distributed.py",  # ~65
    "train/test_lora_dropout.py",  # ~55
    "model/test_model.py",  # ~50
    "reliability/test_synthetic_data.py",  # ~45
    "eval_execution/test_go_batch.py",  # ~45
)


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).parent
    rank = {module: i for i, module in enumerate(LONGEST_MODULES_FIRST)}
    for item in items:
        if item.path.relative_to(tests_dir).as_posix() in QUICK_MODULES:
            item.add_marker(pytest.mark.quick)
    # stable: within a module, and among the modules not listed, collection order is kept
    items.sort(key=lambda item: rank.get(item.path.relative_to(tests_dir).as_posix(), len(rank)))


def pytest_unconfigure(config):
    """The run's own compilation cache goes with the run (the xdist controller removes it)."""
    if _OWN_JAX_CACHE and not hasattr(config, "workerinput"):
        shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
