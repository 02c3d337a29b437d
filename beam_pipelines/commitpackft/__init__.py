"""TFDS builder for CommitPackFT (``tfds build beam_pipelines/commitpackft``)."""

from beam_pipelines.commitpackft.commitpackft_dataset_builder import Builder

__all__ = ["Builder"]
