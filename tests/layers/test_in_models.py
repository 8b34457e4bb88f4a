"""Every new layer inside a Sequential, a functional and a subclassed model: the same outputs, and it trains."""
import numpy as np
import pytest

import kerasckpt
from kerasckpt import layers

from .test_configs import CASES

SINGLE_INPUT = sorted(name for name, (_, shape) in CASES.items() if not isinstance(shape, list))


class Wrapper(kerasckpt.Model):
    def __init__(self, inner, **kwargs):
        super().__init__(**kwargs)
        self.inner = inner
        self.flat = layers.Flatten()
        self.head = layers.Dense(2)

    def call(self, inputs):
        return self.head(self.flat(self.inner(inputs)))


def _make(name):
    kwargs, _ = CASES[name]
    return getattr(layers, name)(**kwargs)


@pytest.mark.parametrize("name", SINGLE_INPUT)
def test_layer_gives_the_same_outputs_in_each_model_kind_and_trains(name):
    shape = CASES[name][1][1:]
    x = np.random.default_rng(0).normal(size=(6,) + shape).astype("float32")
    seq = kerasckpt.Sequential([layers.Input(shape), _make(name), layers.Flatten(), layers.Dense(2)])
    inp = layers.Input(shape)
    func = kerasckpt.Model(inp, layers.Dense(2)(layers.Flatten()(_make(name)(inp))))
    sub = Wrapper(_make(name))
    sub(x)
    for model in (func, sub):
        model.set_weights(seq.get_weights())
    outputs = [model.predict(x, verbose=0) for model in (seq, func, sub)]
    np.testing.assert_array_equal(outputs[0], outputs[1])
    np.testing.assert_array_equal(outputs[0], outputs[2])
    for model in (seq, func, sub):
        model.compile(optimizer="sgd", loss="mse")
        before = [w.copy() for w in model.get_weights()]
        model.fit(x, np.ones((6, 2), "float32"), epochs=1, verbose=0)
        assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


@pytest.mark.parametrize("name", sorted(set(CASES) - set(SINGLE_INPUT)))
def test_merge_layer_in_functional_and_subclassed_models(name):
    shapes = [s[1:] for s in CASES[name][1]]
    xs = [np.random.default_rng(i).normal(size=(5,) + s).astype("float32") for i, s in enumerate(shapes)]
    inputs = [layers.Input(s) for s in shapes]
    func = kerasckpt.Model(inputs, layers.Dense(1)(layers.Flatten()(_make(name)(inputs))))

    class Merged(kerasckpt.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.merge, self.flat, self.head = _make(name), layers.Flatten(), layers.Dense(1)

        def call(self, inputs):
            return self.head(self.flat(self.merge(inputs)))

    sub = Merged()
    sub(xs)
    sub.set_weights(func.get_weights())
    np.testing.assert_array_equal(func.predict(xs, verbose=0), sub.predict(xs, verbose=0))
