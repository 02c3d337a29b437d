"""What the lent GPU machine's image already holds, written down once for bench/device_wheels.py
(which carries only what is missing) and tests/test_device_suite.py (which rehearses on CPU with
only these packages visible).

Source: the lending workplace's description of the `nvidia-h200` kind, "Python packages already
there", read from a machine running the image 'cuda' on 2026-11-17, and the same page's `pip list`
row (2026-11). That machine reaches no package registry, so anything else must travel as wheels.
"""

from __future__ import annotations

import re

# Distribution names as that list prints them (normalised as in PEP 503 by `normalize`).
IMAGE_PACKAGES = frozenset(
    """
    absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch
    build certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage
    cuda-bindings cuda-core cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn
    einops equinox etils execnet filelock flatbuffers flax fonttools formulaic frozenlist fsspec
    gpytorch grpcio h11 h5py hf-xet httpcore httpx huggingface-hub humanize hypothesis idna imageio
    iniconfig interface-meta jax jax-cuda13-pjrt jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib
    kiwisolver lazy-loader lightning lightning-utilities linear-operator lineax llvmlite lxml
    markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes mpi4py mpmath msgpack
    multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba numba-cuda
    numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
    nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
    nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13
    nvidia-nvtx onnx onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum
    opt-einsum-fx optimistix orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy
    portalocker prometheus-client propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments
    pyparsing pyproject-hooks pyre-extensions pytest pytest-benchmark pytest-cov pytest-mock
    pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests rich
    sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
    sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy
    tabulate tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm
    tokenizers toolz torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm
    transformers treescope triton typer typing-extensions typing-inspect urllib3 uvloop
    wadler-lindig werkzeug wheel wrapt xarray xxhash yarl zipp
    """.split()  # noqa: SIM905 (one list, as the source prints it)
)

# Versions the `pip list` row shows (only those octojax's wheels could depend on).
IMAGE_VERSIONS = {
    "jax": "0.11.2",
    "jaxlib": "0.11.2",
    "numpy": "2.5.2",
    "safetensors": "0.8.0",
    "tokenizers": "0.23.2",
    "transformers": "5.17.0",
    "torch": "2.11.0",
}

# Lower bounds implied by a listed package's own requirements (its wheel's METADATA), for
# packages whose version the list does not show: (version, why).
IMAGE_FLOORS = {
    "protobuf": ("6.31.1", "onnx 1.23.1 on the image requires protobuf>=6.31.1"),
    "typing-extensions": ("4.7.1", "onnx 1.23.1 on the image requires typing_extensions>=4.7.1"),
    "ml-dtypes": ("0.5.4", "onnx 1.23.1 on the image requires ml_dtypes>=0.5.4"),
}

# The image's interpreter (the `pip list` row: Python 3.12.3 at /opt/torch/.venv/bin/python3).
IMAGE_PYTHON = "3.12"


def normalize(name: str) -> str:
    """PEP 503 name: lower case, runs of -_. as one '-'."""
    return re.sub(r"[-_.]+", "-", name).lower()
