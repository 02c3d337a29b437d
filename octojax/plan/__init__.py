"""`octojax plan`: a training config's per-device memory before launch, and whether it fits.

    octojax plan --config configs/octocoder.yaml --device v5e-64
    octojax plan --config X.yaml [key=value ...] --devices 8 --device-memory 80GiB [--json]

One module per concern:

- `devices.py`: the accelerator table (HBM per chip, how slice names count chips), sizes parsing.
- `estimate.py`: the formula model, nothing compiled and no device needed (a plan for 64 TPU
  chips runs on a laptop CPU): state, activations, loss and backward peaks -> `MemoryPlan`.
- `measure.py`: the compiler's figures, `memory_analysis()` of the real step compiled on local
  devices, which tests/train/test_plan.py compares with the estimate.
- `cli.py`: the subcommand's flags, the table and the JSON it prints.
"""
