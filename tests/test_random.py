"""Repeatability: set_random_seed makes whole fit() runs bit-identical; SeedGenerator streams replay."""
import re

import numpy as np
import pytest

from kerasckpt import random as kr
from kerasckpt import utils
from kerasckpt.random import SeedGenerator

from conftest import MODEL_KINDS, make_model, tiny_data


def _run(seed, kind="sequential"):
    """A whole run from a seed: model creation (initial weights, Dropout seeds), shuffled fit with dropout."""
    utils.clear_session()
    utils.set_random_seed(seed)
    x, y = tiny_data()
    model = make_model(kind, dropout=0.3)
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(x, y, batch_size=10, epochs=3, shuffle=True, validation_split=0.2, verbose=0)
    return model.get_weights(), history.history, model.predict(x, verbose=0)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_same_seed_gives_bit_identical_runs(kind):
    weights_a, history_a, preds_a = _run(11, kind)
    weights_b, history_b, preds_b = _run(11, kind)
    assert len(weights_a) == len(weights_b) == 8
    for a, b in zip(weights_a, weights_b):
        assert np.array_equal(a, b)
    assert history_a == history_b
    assert np.array_equal(preds_a, preds_b)


def test_different_seeds_give_different_runs():
    weights_a, history_a, _ = _run(11)
    weights_b, history_b, _ = _run(12)
    assert not np.array_equal(weights_a[0], weights_b[0])
    assert history_a["loss"] != history_b["loss"]


def test_the_seed_also_fixes_shuffling_and_dropout_after_creation():
    """Same initial weights, different seeds at fit time: the shuffle order and masks must differ."""
    x, y = tiny_data()
    results = []
    for fit_seed in (1, 1, 2):
        utils.clear_session()
        utils.set_random_seed(0)
        model = make_model("sequential", dropout=0.3)
        model.compile("sgd", "sparse_categorical_crossentropy")
        utils.set_random_seed(fit_seed)
        model.fit(x, y, batch_size=10, epochs=1, verbose=0)
        results.append(model.get_weights()[0])
    assert np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def test_set_random_seed_reseeds_numpy_and_python_random():
    import random
    utils.set_random_seed(5)
    first = (np.random.rand(), random.random(), kr.draw_seed())
    utils.set_random_seed(5)
    assert (np.random.rand(), random.random(), kr.draw_seed()) == first


@pytest.mark.parametrize("seed", [-1, 1.5, "3", None, True, np.float64(2.0)])
def test_set_random_seed_rejects_bad_seeds(seed):
    with pytest.raises(ValueError, match=re.escape(f"seed={seed!r}")):
        utils.set_random_seed(seed)


def test_set_random_seed_accepts_large_integers():
    utils.set_random_seed(2**40)
    a = kr.draw_seed()
    utils.set_random_seed(2**40)
    assert kr.draw_seed() == a
    utils.set_random_seed(2**40 + 2**32)  # differs from 2**40 only above NumPy's legacy 32-bit seed
    assert kr.draw_seed() != a


def test_seed_generator_get_state_set_state_replays():
    gen = SeedGenerator(123)
    gen.next()
    state = gen.get_state()
    assert state == {"seed": 123, "counter": 1}
    draws = [gen.next().random(5) for _ in range(3)]
    assert gen.get_state() == {"seed": 123, "counter": 4}
    other = SeedGenerator(999)
    other.set_state(state)
    for want in draws:
        np.testing.assert_array_equal(other.next().random(5), want)
    assert SeedGenerator(123).next().random(2).tolist() != SeedGenerator(124).next().random(2).tolist()


def test_seed_generator_without_seed_draws_from_the_global_generator():
    utils.set_random_seed(8)
    a = SeedGenerator().seed
    utils.set_random_seed(8)
    assert SeedGenerator().seed == a
    assert SeedGenerator().seed != a  # the next one draws a new seed


def test_global_state_round_trip():
    utils.set_random_seed(4)
    state = kr.get_global_state()
    first = [kr.draw_seed() for _ in range(3)]
    kr.set_global_state(state)
    assert [kr.draw_seed() for _ in range(3)] == first
