"""The typed API (eval.api) that `python -m eval` wraps, and the CLI's --mesh / --distributed.

`CannedGenerator` (from test_generation) is the TEST DOUBLE for the model; scoring is real.
"""

from __future__ import annotations

import inspect
import json

import pytest

from eval import api
from eval.api import DataOptions, ExecutionOptions, ModelOptions, OutputOptions, UsageError
from eval.cli import build_parser, main
from eval.generation import SamplingConfig, sampling_from_args
from eval.harness_format import load_generations
from eval.report import load_results
from tests.eval.test_generation import CannedGenerator


def _recording_loader(monkeypatch, gen):
    """Replace eval.generation.load_generator; return the list of (path, kwargs) it was called with."""
    import eval.generation

    calls = []

    def load(path, dtype="bfloat16", **kwargs):
        calls.append((str(path), {"dtype": dtype, **kwargs}))
        return gen

    monkeypatch.setattr(eval.generation, "load_generator", load)
    return calls


def _require_python_toolchain():
    try:
        from eval.execution import check_toolchains

        check_toolchains(["python"])
    except Exception as e:
        pytest.skip(f"execution backend or python toolchain not available ({e})")


def test_generate_returns_typed_run_and_passes_the_placement(tmp_path, data_dir, monkeypatch):
    calls = _recording_loader(monkeypatch, CannedGenerator(lambda p, i, s: "\n    return 0\n"))
    data = DataOptions(data_dir=data_dir, limit=2)
    out = OutputOptions(output_dir=tmp_path / "a", progress=False, messages=False)
    run = api.generate(str(tmp_path), data=data, tasks=["humanevalsynthesize"],
                       languages=["python", "js"], output=out, generation_only=True)  # fmt: skip
    assert calls == [(str(tmp_path), {"dtype": "bfloat16", "mesh": None, "distributed": False})]
    assert [(r.task, r.language) for r in run.runs] == [
        ("humanevalsynthesize-python", "python"),
        ("humanevalsynthesize-js", "js"),
    ]
    assert run.results == [] and run.results_json is None
    assert len(load_generations(run.runs[0].generations)) == 2
    model = ModelOptions(tmp_path, dtype="float32", mesh="data=1,fsdp=1,tensor=1", distributed=True)
    api.generate(model, data=data, output=out, generation_only=True)
    assert calls[1][1] == {
        "dtype": "float32",
        "mesh": "data=1,fsdp=1,tensor=1",
        "distributed": True,
    }


def test_cli_mesh_and_distributed_reach_the_loader(tmp_path, data_dir, monkeypatch):
    calls = _recording_loader(monkeypatch, CannedGenerator(lambda p, i, s: ""))
    common = ["--model", str(tmp_path), "--data-dir", str(data_dir), "--limit", "1",
              "--output-dir", str(tmp_path / "o"), "--generation-only", "--no-progress"]  # fmt: skip
    assert main(["generate", *common, "--mesh", "data=2,fsdp=1,tensor=4", "--distributed"]) == 0
    assert main(["describe-then-synthesize", *common, "--mesh", "data=1"]) == 0
    assert main(["generate", *common]) == 0
    assert [kw for _, kw in calls] == [
        {"dtype": "bfloat16", "mesh": "data=2,fsdp=1,tensor=4", "distributed": True},
        {"dtype": "bfloat16", "mesh": "data=1", "distributed": False},
        {"dtype": "bfloat16", "mesh": None, "distributed": False},
    ]


def test_score_api_writes_results_and_returns_them(tmp_path, data_dir, problems):
    _require_python_toolchain()
    rows = [[p["prompt"] + p["canonical_solution"], p["prompt"] + p["buggy_solution"]]
            for p in problems["python"][:2]]  # fmt: skip
    gens = tmp_path / "g.json"
    gens.write_text(json.dumps(rows), encoding="utf-8")
    run = api.score("humanevalsynthesize", "python", gens,
                    data=DataOptions(data_dir=data_dir, limit=2),
                    execution=ExecutionOptions(cache_dir=tmp_path / "cache", ks=(1, 2)),
                    output=OutputOptions(output_dir=tmp_path / "out", progress=False))  # fmt: skip
    (result,) = run.results
    assert result["pass@1"] == 0.5 and result["pass@2"] == 1.0
    assert result["model"] == "" and result["config"]["generations"] == str(gens)
    assert run.results_json == tmp_path / "out" / "results.json"
    assert load_results(run.results_json) == [result]
    assert "| Synthesize |" in api.table([run.results_json])


def test_api_rejects_bad_options_before_work(tmp_path):
    with pytest.raises(UsageError, match="--k values"):
        ExecutionOptions(ks=(0,))
    with pytest.raises(UsageError, match="--data-dir"):
        DataOptions().problems("python")
    with pytest.raises(UsageError, match="--limit"):
        DataOptions(data_dir=tmp_path, limit=0).problems("python")
    with pytest.raises(UsageError, match="comma list"):
        api.parse_ks("1,x")
    with pytest.raises(api.ResultsFileError, match="not found"):
        api.table([tmp_path / "missing.json"])


def test_every_cli_subcommand_maps_onto_an_api_function():
    """The CLI is a wrapper: each generation/scoring flag is a parameter of the API call."""
    parser = build_parser()
    gen = parser.parse_args(["generate", "--model", "m", "--mesh", "data=2", "--distributed"])
    assert (gen.mesh, gen.distributed) == ("data=2", True)
    assert {"data", "tasks", "languages", "sampling", "execution", "output", "resume",
            "generation_only", "descriptions_dir", "template"} <= set(
        inspect.signature(api.generate).parameters
    )  # fmt: skip
    assert "n_descriptions" in inspect.signature(api.describe_then_synthesize).parameters
    # one default each: the section's, except HumanEvalPack's generation length (the harness's)
    assert SamplingConfig().replace(max_new_tokens=2048) == api.DEFAULT_SAMPLING
    defaults = build_parser().parse_args(["generate", "--model", "m"])
    assert sampling_from_args(defaults, api.DEFAULT_SAMPLING) == api.DEFAULT_SAMPLING


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    pytest.importorskip("jax", reason="jax is not installed: generation needs it")
    try:
        from octojax.generate.testing import tiny_model_dir
    except ImportError as e:
        pytest.skip(f"octojax.generate.testing.tiny_model_dir is not available ({e})")
    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_generate_api_with_real_model_and_mesh(tmp_path, data_dir, tiny_model):
    """With a real tiny model on a one-device mesh given in the spec form."""
    model = ModelOptions(tiny_model, dtype="float32", mesh="data=1,fsdp=1,tensor=1")
    run = api.generate(model, data=DataOptions(data_dir=data_dir, limit=1),
                       sampling=SamplingConfig(max_new_tokens=8),
                       output=OutputOptions(output_dir=tmp_path, progress=False),
                       generation_only=True)  # fmt: skip
    assert len(load_generations(run.runs[0].generations)) == 1
