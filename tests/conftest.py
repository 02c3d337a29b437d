"""Shared test setup: 8 fake CPU devices for mesh tests, paths to ../shared data."""

import os
from pathlib import Path

# Must happen before jax is imported anywhere: mesh tests need 8 devices on one CPU.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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


def pytest_collection_modifyitems(config, items):
    tests_dir = Path(__file__).parent
    for item in items:
        if item.path.relative_to(tests_dir).as_posix() in QUICK_MODULES:
            item.add_marker(pytest.mark.quick)
