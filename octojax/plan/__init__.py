"""`octojax plan`: a training config's per-device memory before launch, and whether it fits.

    octojax plan --config configs/octocoder.yaml --device v5e-64
    octojax plan --config X.yaml [key=value ...] --devices 8 --device-memory 80GiB [--json]
    octojax plan --config configs/octocoder.yaml --device v5e-64 --compile [all] [--json]

One module per concern:

- `devices.py`: the chip table (HBM, peak bf16 FLOP/s, HBM bandwidth, jax device kinds), slice
  names and TPU topologies, sizes parsing. No jax.
- `estimate.py`: the formula model, nothing compiled and no device needed (a plan for 64 TPU
  chips runs on a laptop CPU): state, activations, loss and backward peaks -> `MemoryPlan`;
  generation's bytes.
- `measure.py` / `measure_generate.py`: the real train step / generation programs compiled from
  abstract inputs for any devices (local, or a TPU slice's from libtpu); `memory_analysis()`.
- `tpu.py`: libtpu's compile-only devices of a slice; a quiet start without TPUs.
- `hlo_cost.py`: loop trip counts for `cost_analysis()`; `roofline.py`: step time, tokens/s, MFU.
- `compiled.py`, `compile_cli.py`: what `--compile` reports; `cli.py`: flags, table, JSON.

libtpu on a host without TPU chips: importing `octojax` keeps jax on the CPU it would fall back to
(`octojax/quiet_start.py`); `tpu.slice_devices` loads libtpu on demand for a slice's devices.
"""
