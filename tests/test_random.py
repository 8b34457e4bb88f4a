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


# ---------------------------------------------------------------------- streams and kerasckpt.random

def test_consecutive_draws_of_a_stream_share_no_numbers():
    """Draw k+1 must not replay draw k shifted by one Philox block (the counter once sat in the block word)."""
    gen = SeedGenerator(5)
    first, second = gen.next().random(64), gen.next().random(64)
    assert not np.intersect1d(first, second).size
    perm_a, perm_b = kr.stream_generator(5, 0).permutation(1000), kr.stream_generator(5, 1).permutation(1000)
    assert (perm_a == perm_b).mean() < 0.02  # independent permutations, not near-copies


def test_dropout_masks_of_successive_steps_are_independent():
    from kerasckpt import layers
    layer = layers.Dropout(0.5, seed=3)
    x = np.ones((1, 4096), "float32")
    a = np.asarray(layer(x, training=True).numpy()) > 0
    b = np.asarray(layer(x, training=True).numpy()) > 0
    for shift in range(0, 17):  # a shifted copy of the previous mask would agree almost everywhere
        assert (a[0, shift:] == b[0, :4096 - shift]).mean() < 0.6


@pytest.mark.parametrize("fn,args,dtype", [
    (kr.normal, ((3, 4),), "float32"), (kr.uniform, ((3, 4),), "float32"),
    (kr.randint, ((3, 4), 0, 10), "int32")])
def test_random_functions_follow_keras_seed_rules(fn, args, dtype):
    a, b = fn(*args, seed=7), fn(*args, seed=7)
    assert a.shape == (3, 4) and a.dtype == dtype
    np.testing.assert_array_equal(a, b)  # an int seed: the same numbers at every call, as in Keras
    gen = SeedGenerator(7)
    c, d = fn(*args, seed=gen), fn(*args, seed=gen)
    assert gen.counter == 2 and not np.array_equal(c, d)
    gen.set_state({"seed": 7, "counter": 1})
    np.testing.assert_array_equal(fn(*args, seed=gen), d)  # the state replays the stream
    utils.set_random_seed(1)
    e = fn(*args)
    utils.set_random_seed(1)
    np.testing.assert_array_equal(fn(*args), e)  # seed=None: the global generator


def test_random_function_values():
    x = kr.normal((20000,), mean=3.0, stddev=2.0, seed=1)
    assert abs(x.mean() - 3.0) < 0.05 and abs(x.std() - 2.0) < 0.05
    u = kr.uniform((20000,), minval=-2, maxval=5, dtype="float64", seed=1)
    assert u.dtype == np.float64 and u.min() >= -2 and u.max() < 5
    r = kr.randint((20000,), 3, 7, dtype="int64", seed=1)
    assert r.dtype == np.int64 and set(np.unique(r)) == {3, 4, 5, 6}


def test_shuffle_moves_whole_slices():
    x = np.arange(40).reshape(10, 4)
    s = kr.shuffle(x, seed=SeedGenerator(2))
    assert sorted(map(tuple, s)) == sorted(map(tuple, x)) and not np.array_equal(s, x)
    t = kr.shuffle(x, axis=1, seed=3)
    assert sorted(t[0]) == [0, 1, 2, 3] and np.array_equal(t, x[:, t[0]])  # one column order for every row
    with pytest.raises(ValueError, match="scalar"):
        kr.shuffle(np.float32(1))


def test_dropout_function():
    x = np.ones((200, 50), "float32")
    y = kr.dropout(x, 0.25, seed=4)
    assert y.dtype == np.float32 and set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs((y == 0).mean() - 0.25) < 0.02
    z = kr.dropout(x, 0.5, noise_shape=(None, 1), seed=4)  # one decision per row
    assert all(len(set(row)) == 1 for row in z)
    assert kr.dropout(x, 0.0) is x and not kr.dropout(x, 1.0).any()
    for rate in (-0.1, 1.5, "0.5", True):
        with pytest.raises(ValueError, match="rate"):
            kr.dropout(x, rate)


def test_dropout_function_is_differentiable():
    import kerasckpt
    v = kerasckpt.Variable(np.ones((4, 8), "float32"))
    with kerasckpt.GradientTape() as tape:
        out = kerasckpt.ops.sum(kr.dropout(v, 0.5, seed=9))
    grad = tape.gradient(out, [v])[0]
    np.testing.assert_array_equal(np.asarray(grad), np.asarray(kr.dropout(np.ones((4, 8), "float32"), 0.5, seed=9)))


@pytest.mark.parametrize("call,match", [
    (lambda: kr.normal((2,), seed=-1), "seed"), (lambda: kr.normal((2,), seed=1.5), "seed"),
    (lambda: kr.normal((2,), dtype="int32"), "floating point"), (lambda: kr.uniform((2,), dtype="int8"), "floating"),
    (lambda: kr.randint((2,), 0, 5, dtype="float32"), "integer"), (lambda: kr.randint((2,), 5, 5), "minval < maxval"),
    (lambda: SeedGenerator(-3), "non-negative")])
def test_random_functions_refuse_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_batch_draws_are_keyed_by_position_not_by_order():
    gen = SeedGenerator(11)

    def load(epoch, index):
        with kr.batch_draws(epoch, index, seed=99):
            return kr.normal((3,), seed=gen), kr.uniform((2,)), gen.next().random(2)

    first = load(0, 5)
    load(0, 2)
    again = load(0, 5)  # the same batch gives the same numbers whatever was loaded in between
    assert gen.counter == 0  # draws inside a batch do not advance the stream
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(load(1, 5)[0], first[0]) and not np.array_equal(load(0, 6)[0], first[0])
    assert not np.array_equal(first[0], first[2][:1])  # draws within one batch differ
    gen.counter = 4  # the stream's state is part of the key
    assert not np.array_equal(load(0, 5)[0], first[0])
    before = kr.get_global_state()
    load(0, 1)
    assert kr.get_global_state() == before  # seed=None inside a batch leaves the global generator alone


def test_batch_draws_are_per_thread():
    import threading
    gen = SeedGenerator(1)
    seen = {}

    def worker():
        with kr.batch_draws(0, 0, seed=1):
            seen["in"] = kr.normal((2,), seed=gen)
    with kr.batch_draws(0, 0, seed=1):
        expected = kr.normal((2,), seed=gen)
    t = threading.Thread(target=worker)
    t.start()
    t.join()
    np.testing.assert_array_equal(seen["in"], expected)
    gen.next()  # outside any batch the stream advances
    assert gen.counter == 1
