"""Write the Keras 3 fixtures of the models of tests/data/sequence_zoo.py (torch backend, Keras 3.15.1 made them).

    KERAS_BACKEND=torch python tests/data/make_sequence_fixtures.py [name ...]

The same files as make_layer_fixtures.py writes for its models: `<name>.keras`, `<name>.h5` (not for the
subclassed one), `<name>.weights.h5` and `<name>.expected.npz`.
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import make_layer_fixtures  # noqa: E402
import sequence_zoo  # noqa: E402

if __name__ == "__main__":
    make_layer_fixtures.main(sys.argv[1:], zoo=sequence_zoo, subclassed="sequence_sub")
