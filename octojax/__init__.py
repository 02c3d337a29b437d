"""octojax: OctoPack (instruction tuning of code LLMs on Git commits) in JAX/Flax."""

__version__ = "0.1.0"
