"""Run one layer in kerasckpt and in Keras 3 (torch backend) on the same weights and inputs: outputs and gradients."""
import numpy as np

import kerasckpt
from kerasckpt import ops
from kerasckpt.autograd import GradientTape


def random_inputs(shapes, seed=0, integer=False):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s).astype("float32") for s in shapes]


def randomize_weights(layer, seed=1):
    """Give every weight random values, so gradients of scales and offsets are not special cases."""
    rng = np.random.default_rng(seed)
    layer.set_weights([rng.normal(0.0, 0.5, size=w.shape).astype("float32") for w in layer.get_weights()])


def ours_forward_backward(layer, inputs, upstream, many, **call_kwargs):
    xs = [ops.convert_to_tensor(x) for x in inputs]
    with GradientTape() as tape:
        tape.watch(xs)
        out = layer(xs if many else xs[0], **call_kwargs)
        loss = ops.sum(ops.multiply(out, upstream))
    grads = tape.gradient(loss, xs + layer.trainable_weights, unconnected_gradients="zero")
    return out.numpy(), [g.numpy() for g in grads[:len(xs)]], [g.numpy() for g in grads[len(xs):]]


def keras_forward_backward(layer, inputs, upstream, many, **call_kwargs):
    import torch
    xs = [torch.tensor(x, requires_grad=True) for x in inputs]
    kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in call_kwargs.items()}
    out = layer(xs if many else xs[0], **kwargs)
    loss = (out * torch.tensor(upstream)).sum()
    for w in layer.trainable_weights:
        w.value.grad = None
    loss.backward()
    zeros = lambda t: np.zeros(t.shape, "float32") if t.grad is None else t.grad.numpy()  # noqa: E731
    return (out.detach().numpy(), [zeros(x) for x in xs], [zeros(w.value) for w in layer.trainable_weights])


def compare_with_keras(keras, class_name, config, shapes, call_kwargs=None, seed=0, atol=2e-5, many=None):
    """Build `class_name(**config)` in both libraries, give Keras our (randomized) weights, and compare the
    outputs and the gradients of `sum(output * upstream)` for the inputs and every trainable weight."""
    call_kwargs = call_kwargs or {}
    many = len(shapes) > 1 if many is None else many
    inputs = random_inputs(shapes, seed)
    ours = getattr(kerasckpt.layers, class_name)(**config)
    theirs = getattr(keras.layers, class_name)(**config)
    ours.build(shapes if many else shapes[0])
    randomize_weights(ours, seed + 1)
    theirs.build(shapes if many else shapes[0])
    theirs.set_weights(ours.get_weights())
    probe = ours(inputs if many else inputs[0], **call_kwargs)
    upstream = np.random.default_rng(seed + 2).normal(size=np.shape(probe)).astype("float32")
    out, gx, gw = ours_forward_backward(ours, inputs, upstream, many, **call_kwargs)
    k_out, k_gx, k_gw = keras_forward_backward(theirs, inputs, upstream, many, **call_kwargs)
    np.testing.assert_allclose(out, k_out, atol=atol, rtol=1e-5, err_msg="outputs")
    assert len(gw) == len(k_gw) == len(ours.trainable_weights)
    for i, (a, b) in enumerate(zip(gx, k_gx)):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4, err_msg=f"gradient of input {i}")
    for w, a, b in zip(ours.trainable_weights, gw, k_gw):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4, err_msg=f"gradient of {w.path}")
    return ours, theirs
