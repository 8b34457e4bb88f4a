"""Small models that use every layer of issue 15's first part, built the same way with Keras 3 or kerasckpt.

`build(lib, name)` takes the `keras` or `kerasckpt` package; make_layer_fixtures.py saves Keras's versions in
tests/data, and the tests build kerasckpt's twins from the same code.
"""
import numpy as np

NAMES = ("conv2d_seq", "conv1d_func", "merge_func", "conv_sub")


def data(name, n=24):
    """(x, y) for each model: a few dozen samples, a fixed seed."""
    rng = np.random.default_rng(5)
    if name in ("conv2d_seq", "conv_sub"):
        x = rng.normal(size=(n, 8, 8, 3)).astype("float32")
        return x, (x[:, :4].mean(axis=(1, 2, 3)) > 0).astype("int64") + (x[:, 4:].mean(axis=(1, 2, 3)) > 0)
    if name == "conv1d_func":
        x = rng.normal(size=(n, 12, 3)).astype("float32")
        return x, np.stack([x.mean(axis=(1, 2)), x[:, -1, 0]], axis=1).astype("float32")
    a, b = rng.normal(size=(n, 6)).astype("float32"), rng.normal(size=(n, 6)).astype("float32")
    return [a, b], (a * b).sum(axis=1, keepdims=True).astype("float32")


def build(lib, name):
    """The compiled model `name` of `lib` (keras or kerasckpt)."""
    L, ops = lib.layers, lib.ops
    if name == "conv2d_seq":  # 8x8 -> same 8 -> pad 10 -> pool 5 -> transpose 10 -> up 20 -> avg 10 -> conv 9
        model = lib.Sequential([
            L.Input((8, 8, 3)), L.Rescaling(0.5, offset=0.1), L.Conv2D(4, 3, padding="same", activation="relu"),
            L.ZeroPadding2D(1), L.MaxPooling2D(2), L.Conv2DTranspose(4, 3, strides=2, padding="same"),
            L.UpSampling2D(2), L.AveragePooling2D(2), L.Conv2D(4, 2, groups=2, activation="relu"),
            L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")], name="conv2d_seq")
        model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
    elif name == "conv1d_func":
        inp = L.Input((12, 3))
        h = L.Conv1D(6, 3, padding="causal", name="causal")(inp)
        h = L.LayerNormalization(name="norm")(h)
        h = L.LeakyReLU(0.1, name="leaky")(h)
        h = L.MaxPooling1D(2, name="max1")(h)
        h = L.Conv1D(4, 3, padding="same", dilation_rate=2, name="dilated")(h)
        h = L.ReLU(max_value=6.0, negative_slope=0.1, name="relu6")(h)
        h = L.AveragePooling1D(2, padding="same", name="avg1")(h)
        pooled = L.Concatenate(name="cat")([L.GlobalAveragePooling1D(name="gap")(h), L.GlobalMaxPooling1D(name="gmp")(h),
                                            L.GlobalMaxPooling2D(name="gmp2")(ops.expand_dims(h, 1))])
        model = lib.Model(inp, L.Dense(2, name="out")(pooled), name="conv1d_func")
        model.compile(optimizer=lib.optimizers.RMSprop(1e-2, momentum=0.5), loss="mean_squared_error")
    elif name == "merge_func":
        a, b = L.Input((6,), name="a"), L.Input((6,), name="b")
        da, db = L.Dense(6, name="da")(a), L.Dense(6, activation="tanh", name="db")(b)
        merged = [L.Add()([da, db]), L.Subtract()([da, db]), L.Multiply()([da, db]), L.Average()([da, db]),
                  L.Maximum()([da, db]), L.Minimum()([da, db])]
        h = L.Reshape((6, 6))(L.Concatenate()(merged))
        h = L.Softmax(axis=1)(L.Permute((2, 1))(h))
        h = L.LayerNormalization(axis=[1, 2])(h) + ops.expand_dims(a, 1) * 0.5
        h = L.RepeatVector(2)(L.GlobalAveragePooling1D()(h))
        out = L.Dense(1, name="out")(L.Flatten()(h)) - ops.mean(b, axis=-1, keepdims=True)
        model = lib.Model([a, b], out, name="merge_func")
        model.compile(optimizer=lib.optimizers.SGD(0.05, momentum=0.9), loss="mean_squared_error")
    elif name == "conv_sub":
        model = conv_sub_class(lib)(name="conv_sub")
        model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
        model(np.zeros((1, 8, 8, 3), "float32"))
    else:
        raise ValueError(f"unknown model {name!r}; use one of {NAMES}")
    return model


def conv_sub_class(lib):
    """A subclassed convnet (weights exchange only: its class is not registered in both libraries)."""
    L = lib.layers

    class ConvSub(lib.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.conv = L.Conv2D(5, 3, activation="relu")
            self.pool = L.MaxPooling2D()
            self.norm = L.LayerNormalization()
            self.flat = L.Flatten()
            self.head = L.Dense(3, activation="softmax")

        def call(self, inputs):
            return self.head(self.flat(self.norm(self.pool(self.conv(inputs)))))

    return ConvSub
