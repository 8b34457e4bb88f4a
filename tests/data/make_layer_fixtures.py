"""Write the Keras 3 fixtures of the layers of tests/data/layer_zoo.py (torch backend, Keras 3.15.1 made them).

    KERAS_BACKEND=torch python tests/data/make_layer_fixtures.py [name ...]

For each model: `<name>.keras`, `<name>.h5` (not for the subclassed one) and `<name>.weights.h5` as Keras
writes them, and `<name>.expected.npz` with the data, Keras's predictions, and the weights and optimizer
variables after one more `train_on_batch` (to check that kerasckpt continues with the same state).
"""
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import layer_zoo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main(only=()):
    for name in layer_zoo.NAMES:
        if only and name not in only:
            continue
        keras.utils.set_random_seed(0)
        model = layer_zoo.build(keras, name)
        x, y = layer_zoo.data(name)
        model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
        base = os.path.join(HERE, name)
        model.save_weights(base + ".weights.h5")
        if name != "conv_sub":
            model.save(base + ".keras")
            model.save(base + ".h5")
        pred = model.predict(x, verbose=0)
        step_x = [v[:8] for v in x] if isinstance(x, list) else x[:8]
        model.train_on_batch(step_x, y[:8])
        after = {f"w{i}": np.asarray(w) for i, w in enumerate(model.get_weights())}
        opt = {f"o{i}": np.asarray(v) for i, v in enumerate(model.optimizer.variables)}
        inputs = {f"x{i}": v for i, v in enumerate(x)} if isinstance(x, list) else {"x0": x}
        np.savez(base + ".expected.npz", y=y, pred=pred, **inputs, **after, **opt)
        print("wrote", name)


if __name__ == "__main__":
    main(sys.argv[1:])
