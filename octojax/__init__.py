"""octojax: OctoPack (instruction tuning of code LLMs on Git commits) in JAX/Flax."""

from octojax.quiet_start import quiet_cpu_start

__version__ = "0.1.0"

quiet_cpu_start()  # libtpu installed, no TPU chip here: jax on the CPU without libtpu's warnings
