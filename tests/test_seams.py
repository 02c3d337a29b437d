"""The seams between packages: one sampling section, one mesh section, one way each is imported."""

import ast
import json
from pathlib import Path

import jax
import pytest

from octojax.cli import build_parser as octojax_parser
from octojax.cli import main as octojax_main
from octojax.config import ConfigError
from octojax.mesh import MeshSection, build_mesh
from octojax.pipeline.config import load_run_config
from octojax.sampling_config import SamplingConfig, sampling_from_args

REPO = Path(__file__).resolve().parents[1]


def _parsers():
    """(name, parsed defaults, the defaults that entry point should have) per sampling CLI."""
    from eval.cli import build_parser as eval_parser
    from eval.generation import DEFAULT_SAMPLING

    ours = octojax_parser()
    return [
        ("octojax generate", ours.parse_args(["generate", "--model", "m"]), SamplingConfig()),
        ("octojax demo", ours.parse_args(["demo"]), SamplingConfig()),
        ("python -m eval generate", eval_parser().parse_args(["generate", "--model", "m"]),
         DEFAULT_SAMPLING),
        ("python -m eval describe-then-synthesize",
         eval_parser().parse_args(["describe-then-synthesize", "--model", "m"]), DEFAULT_SAMPLING),
    ]  # fmt: skip


def test_every_sampling_cli_has_every_field_with_one_default():
    for name, args, want in _parsers():
        assert sampling_from_args(args, want) == want, name
    # the only entry point with another default says where it comes from
    from eval.generation import DEFAULT_SAMPLING, HUMANEVALPACK_MAX_NEW_TOKENS

    changed = {
        k for k, v in DEFAULT_SAMPLING.model_dump().items() if getattr(SamplingConfig(), k) != v
    }
    assert changed == {"max_new_tokens"} and HUMANEVALPACK_MAX_NEW_TOKENS == 2048


def test_a_new_field_would_reach_every_cli(monkeypatch):
    """Flags come from the fields: a field added to the section appears in every parser."""
    from pydantic import Field, create_model

    import octojax.sampling_config as sc

    extended = create_model("Extended", __base__=SamplingConfig, min_p=(float, Field(0.0, ge=0)))
    monkeypatch.setattr(sc, "SamplingConfig", extended)
    args = octojax_parser().parse_args(["generate", "--model", "m", "--min-p", "0.05"])
    assert args.min_p == 0.05


def test_bad_sampling_flag_is_one_line_naming_the_flag(tmp_path, capsys):
    code = octojax_main(["generate", "--model", str(tmp_path), "--prompt", "x", "--top-p", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--top-p" in err[0], err


def test_sampling_replace_validates():
    assert SamplingConfig().replace(seed=3).seed == 3
    with pytest.raises(ConfigError, match="temperature"):
        SamplingConfig().replace(temperature=-1.0)


def test_mesh_spec_and_section_are_one_thing():
    section = MeshSection.parse("data=2, tensor=4, dcn_data=2")
    assert (section.data, section.fsdp, section.tensor, section.dcn_data) == (2, 1, 4, 2)
    for bad in ("data=0", "pipeline=2", "data=x", "dcn_data=-1"):
        with pytest.raises(ConfigError, match="mesh"):
            MeshSection.parse(bad)
    # an explicit smaller mesh takes the first devices only where asked (generation)
    small = MeshSection.parse("tensor=2")
    assert build_mesh(small, jax.devices(), subset_ok=True).devices.size == 2
    with pytest.raises(ConfigError, match="need 2 devices"):
        build_mesh(small, jax.devices())


@pytest.mark.skipif(len(jax.devices()) < 4, reason="needs 4 (fake) devices")
def test_generation_takes_the_training_mesh_section_with_its_rules(tmp_path):
    from octojax.generate import Generator
    from octojax.generate.testing import tiny_model_dir

    model_dir = tiny_model_dir(tmp_path / "m", n_head=4)
    plain = Generator.from_pretrained(
        model_dir, dtype="float32", mesh=MeshSection(tensor=4, fsdp=1)
    )
    assert plain.model.blocks.q_kernel[...].sharding.spec[2] == "tensor"
    ruled = MeshSection(tensor=4, fsdp=1, rules={"heads": None})  # as a train config writes it
    gen = Generator.from_pretrained(model_dir, dtype="float32", mesh=ruled)
    assert gen.model.blocks.q_kernel[...].sharding.spec[2] is None
    sampling = SamplingConfig(max_new_tokens=6, slots=4)
    assert [o.token_ids for o in gen.generate(["def f():"], sampling)] == [
        o.token_ids for o in plain.generate(["def f():"], sampling)
    ]


def _imports(path: Path) -> set[str]:
    """Every module a file imports (top level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_train_and_generate_do_not_import_each_other():
    for here, other in (("train", "octojax.generate"), ("generate", "octojax.train")):
        for path in (REPO / "octojax" / here).glob("*.py"):
            bad = {m for m in _imports(path) if m.startswith(other)}
            assert not bad, f"{path.relative_to(REPO)} imports {bad}"


def test_eval_touches_octojax_in_one_module():
    users = sorted(
        str(p.relative_to(REPO))
        for p in (REPO / "eval").rglob("*.py")
        if any(m.startswith("octojax") for m in _imports(p))
    )
    assert users == ["eval/generation.py"]


def test_run_config_refuses_train_paths_it_sets_itself():
    data = "train.data={tokenizer: t, seq_len: 256, sources: [{kind: jsonl, path: p.jsonl}]}"
    for key in ("train.run_dir=x", data):
        with pytest.raises(ConfigError, match="set by the run"):
            load_run_config(overrides=[key])
    cfg = load_run_config(overrides=["evaluate.mesh.tensor=2", "evaluate.sampling.n_samples=3"])
    assert cfg.evaluate.mesh.tensor == 2 and cfg.evaluate.sampling.n_samples == 3


def test_stage_results_are_typed_and_round_trip(tmp_path):
    from octojax.pipeline.results import TrainResult
    from octojax.pipeline.run import Run

    run = Run(load_run_config(overrides=[f"run_dir={tmp_path}"]))
    assert run.result("train") == TrainResult()  # not run yet: every field empty
    (tmp_path / "train").mkdir()
    done = TrainResult(steps=3, first_loss=5.0, last_loss=4.0, sources=["a.jsonl"])
    run._finish("train", 1.5, done)
    assert run.result("train") == done
    assert json.loads((tmp_path / "train" / ".done.json").read_text())["seconds"] == 1.5
