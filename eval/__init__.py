"""HumanEvalPack evaluation: prompts, generation glue, execution, pass@k and reports.

Never imports jax: generation loads `octojax.generate` lazily, so scoring runs anywhere.
"""
