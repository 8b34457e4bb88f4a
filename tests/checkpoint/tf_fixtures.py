"""The TensorFlow-written fixtures of tests/data/tf and what TensorFlow returned for them (expected.json).

(Not a conftest.py: several test folders use that module name.)
"""
import base64
import json
import os
import shutil

import numpy as np

TF_DATA = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "tf")
PARTS = ["dtypes", "tf1_saver", "tf1_sharded", "tf2_sharded", "guide", "guide_legacy", "tf_keras", "keras3_tf",
         "keras3_tf_functional"]


def expected(part):
    with open(os.path.join(TF_DATA, part, "expected.json")) as f:
        return json.load(f)


def all_checkpoints():
    """`[(part, relative prefix)]` of every fixture checkpoint."""
    return [(part, rel) for part in PARTS for rel in expected(part)["checkpoints"]]


def decode(value):
    """An expected value as TensorFlow returned it: an ndarray (bfloat16 as its uint16 bits), or a list of bytes."""
    if value["dtype"] == "string":
        return [base64.b64decode(x) for x in value["values"]]
    dtype = "<u2" if value["dtype"] == "bfloat16" else np.dtype(value["dtype"]).newbyteorder("<")
    return np.frombuffer(base64.b64decode(value["b64"]), dtype=dtype).reshape(value["shape"])


def copy_part(part, tmp_path):
    """A writable copy of a fixture directory."""
    dest = tmp_path / part
    shutil.copytree(os.path.join(TF_DATA, part), dest)
    return dest
