"""Data pipelines: `PyDataset`, its resumable streams and iterators, and the workers that load ahead."""
from kerasckpt.data.iterator import DatasetIterator
from kerasckpt.data.py_dataset import PyDataset

__all__ = ["PyDataset", "DatasetIterator"]
