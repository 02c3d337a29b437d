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
