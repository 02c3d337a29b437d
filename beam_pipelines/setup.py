"""Worker packaging for Dataflow: ``--setup_file ./beam_pipelines/setup.py``.

Beam builds an sdist of this directory and installs it on every worker, so workers get the
``beam_pipelines`` package (and its small dependencies) without the rest of octojax (no jax).
The body only runs when setuptools executes this file, never on ``import beam_pipelines``.
"""

if __name__ == "__main__":
    import setuptools

    setuptools.setup(
        name="octojax-beam-pipelines",
        version="0.1.0",
        description="CommitPack / CommitPackFT Beam pipelines (octojax)",
        packages=["beam_pipelines", "beam_pipelines.commitpackft"],
        package_dir={"beam_pipelines": "."},
        python_requires=">=3.10",
        install_requires=["google-crc32c>=1.5", "protobuf>=4.21", "tokenizers>=0.21"],
    )
