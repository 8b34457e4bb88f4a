"""What restoring costs beyond reading when a model has many small variables (the object-graph work).

A Sequential of N Dense(8) layers with a built Adam (3 variables per weight): `Checkpoint.restore` of
its own checkpoint, and `model.load_weights` of the model's weights in tf.keras's layout (the model at
the root of TensorFlow's object graph, layers under `layer_with_weights-N`; written from kerasckpt's
values), each against the reference of the same run: opening the file and reading every value with its
checksum verified (`load_checkpoint` + `read`).

Run: OMP_NUM_THREADS=1 python benchmarks/restore_many_variables.py --layers 100 400
"""
import argparse
import os
import tempfile

import numpy as np
from _bench import interleaved, machine

import kerasckpt
from kerasckpt import layers
from kerasckpt.checkpoint import bundle, trackable_graph
from kerasckpt.checkpoint.graph import ObjectGraph


def model_of(n):
    model = kerasckpt.Sequential([layers.Input((8,))] + [layers.Dense(8) for _ in range(n)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_weights)
    return model


def tf_keras_layout(model, prefix):
    """The model's weights as tf.keras's save_weights lays them out: the model at the root of the graph."""
    graph = ObjectGraph(model)
    entries = [(n.key + trackable_graph.VALUE_SUFFIX, np.array(n.value())) for n in graph.value_nodes()]
    bundle.write_bundle(prefix, entries + [(trackable_graph.GRAPH_KEY, trackable_graph.from_object_graph(graph))])
    return prefix


def read_all(prefix):
    with kerasckpt.load_checkpoint(prefix) as reader:
        for key in reader.keys():
            if reader.dtype(key) is not None and key != trackable_graph.GRAPH_KEY:
                reader.read(key)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[100, 400])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    with tempfile.TemporaryDirectory() as d:
        for n in args.layers:
            model = model_of(n)
            own = kerasckpt.Checkpoint(model=model, optimizer=model.optimizer).write(os.path.join(d, f"own{n}"))
            tf_layout = tf_keras_layout(model, os.path.join(d, f"tf{n}"))
            cases = {
                "read every value (reference)": (lambda: read_all(own), None),
                "Checkpoint.restore": (lambda: kerasckpt.Checkpoint(model=model, optimizer=model.optimizer)
                                       .restore(own).expect_partial(), None),
                "load_weights, tf.keras layout": (lambda: model.load_weights(tf_layout), None),
            }
            times = interleaved(cases, args.repeats)
            base = times["read every value (reference)"]
            count = len(model.weights) + len(model.optimizer.variables)
            print(f"{n} Dense layers, {count} variables (median of {args.repeats})")
            for name, t in times.items():
                print(f"  {name:<32} {t * 1e3:8.1f} ms  ratio {t / base:5.2f}")


if __name__ == "__main__":
    main()
