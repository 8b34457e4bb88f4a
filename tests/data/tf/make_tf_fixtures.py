"""Write the TensorFlow checkpoint fixtures of tests/checkpoint (TensorFlow 2.21, tf_keras 2.21, Keras 3.15).

    /work/venvs/tf/bin/python tests/data/tf/make_tf_fixtures.py          # every part, into tests/data/tf/

Run with a python that has `tensorflow-cpu` and `tf_keras` (never imported by kerasckpt itself). Each part
runs in its own subprocess (TF1 graph mode, logical devices and the Keras backend are per process), writes
into a temporary directory (so the absolute paths a TF1 `Saver` puts in its state file name a directory
that no longer exists: "a checkpoint from another machine") and is then copied to `tests/data/tf/<part>/`.

Each part's `expected.json` holds what TensorFlow itself returns for every checkpoint prefix in it:
`list_variables`, `get_variable_to_dtype_map` (dtype names) and every value of `load_variable` as raw
little-endian bytes (base64; bfloat16 as its 16 bits) or, for strings, the base64 of each element; for
entries TensorFlow cannot load (variant) the error text. Parts with models add `inputs`/`predictions`
(and weights by the library's own names) for the restore tests.
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ["dtypes", "tf1_saver", "tf1_sharded", "tf2_sharded", "guide", "guide_legacy", "tf_keras", "keras3_tf",
         "keras3_tf_functional"]


# ---------------------------------------------------------------------------------------------- encoding
def encode_array(a):
    import numpy as np
    a = np.asarray(a)
    if a.dtype == object or a.dtype.kind in "SU":
        flat = [x if isinstance(x, bytes) else str(x).encode() for x in a.reshape(-1)]
        return {"dtype": "string", "shape": list(a.shape), "values": [base64.b64encode(x).decode() for x in flat]}
    name = "bfloat16" if a.dtype.name == "bfloat16" else a.dtype.name
    le = a if name == "bfloat16" else a.astype(a.dtype.newbyteorder("<"))
    return {"dtype": name, "shape": list(a.shape), "b64": base64.b64encode(np.ascontiguousarray(le).tobytes()).decode()}


def describe(prefix, root):
    """What TensorFlow returns for every entry of the checkpoint `prefix`."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(prefix)
    out = {"list_variables": [[k, list(s)] for k, s in tf.train.list_variables(prefix)],
           "dtypes": {k: v.name for k, v in reader.get_variable_to_dtype_map().items()},
           "shapes": {k: list(v) for k, v in reader.get_variable_to_shape_map().items()}, "values": {}, "errors": {}}
    for key, _ in tf.train.list_variables(prefix):
        try:
            out["values"][key] = encode_array(tf.train.load_variable(prefix, key))
        except Exception as e:  # noqa: BLE001  (the variant entry: TF cannot convert it)
            out["errors"][key] = f"{type(e).__name__}: {e}"
    return out


def record(root, expected, *, prefixes=(), directories=()):
    """Add TF's view of `prefixes` and `latest_checkpoint(directories)` to `expected` (paths relative to root)."""
    import tensorflow as tf
    rel = lambda p: None if p is None else os.path.relpath(p, root)  # noqa: E731
    for prefix in prefixes:
        expected.setdefault("checkpoints", {})[rel(prefix)] = describe(prefix, root)
    for d in directories:
        expected.setdefault("latest_checkpoint", {})[rel(d)] = rel(tf.train.latest_checkpoint(d))


# ---------------------------------------------------------------------------------------------- parts
def part_dtypes(root):
    """Every dtype, through `tf.raw_ops.SaveV2` (any dtype, any order) and through `tf.train.Checkpoint`."""
    import ml_dtypes
    import numpy as np
    import tensorflow as tf
    special = np.array([0.0, -0.0, 1.5, -2.25, np.inf, -np.inf, 1e-40, 3.4e38], np.float32)
    nan_payload = np.array([0x7FC00001, 0xFFC12345], np.uint32).view(np.float32)
    t = {
        "float32": np.concatenate([special, nan_payload]).reshape(2, 5),
        "float64": np.array([[np.pi, -0.0, 5e-324], [1e308, np.nan, -1.0]]),
        "float16": np.array([0.5, -65504.0, 6e-8, np.inf], np.float16),
        "bfloat16": np.array([1.0, -3.140625, 1e38, 9.2e-41], ml_dtypes.bfloat16),
        "int8": np.array([-128, -1, 0, 127], np.int8), "int16": np.array([-32768, 7, 32767], np.int16),
        "int32": np.array([[-2 ** 31, 0], [1, 2 ** 31 - 1]], np.int32),
        "int64": np.array([-2 ** 63, -1, 2 ** 63 - 1], np.int64),
        "uint8": np.array([0, 128, 255], np.uint8), "uint16": np.array([0, 65535], np.uint16),
        "uint32": np.array([0, 2 ** 32 - 1], np.uint32), "uint64": np.array([0, 2 ** 64 - 1], np.uint64),
        "bool": np.array([[True, False, True]]), "complex64": np.array([1 + 2j, -0.5j, np.inf], np.complex64),
        "complex128": np.array([[1e-300 - 1e300j]], np.complex128),
        "scalar_float64": np.float64(-7.25), "scalar_int32": np.int32(42), "scalar_bool": np.bool_(True),
        "empty_float32": np.zeros([0], np.float32), "empty_2d_int64": np.zeros([0, 2], np.int64),
        "empty_3d_float32": np.zeros([2, 0, 3], np.float32),
        "string": np.array([[b"a", b"", b"ccc"], [b"dd", "\u00e9".encode(), b"f" * 130]], object),
        "string_scalar": np.array(b"x" * 300, object), "string_empty_shape": np.zeros([0], object),
        "string_all_empty": np.array([b"", b""], object),
        "string_binary": np.array([bytes(range(256)), b"\x00\xff"], object),
        "scope/with/slashes": np.arange(6, dtype=np.float32).reshape(3, 2),
        "z_last": np.array([1], np.int64), "A_upper": np.array([2], np.int64), "\u00fcnicode_key": np.array([3], np.int64),
    }
    names = list(t)
    tensors = [tf.constant(v, dtype=tf.string) if (isinstance(v, np.ndarray) and v.dtype == object)
               else tf.constant(v) for v in t.values()]
    d = os.path.join(root, "savev2")
    os.makedirs(d)
    tf.raw_ops.SaveV2(prefix=os.path.join(d, "bundle"), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=tensors)
    variables = {
        "f16": tf.Variable(np.array([[1.5, -2.0]], np.float16)), "f32": tf.Variable(t["float32"]),
        "f64": tf.Variable(t["float64"]), "bf16": tf.Variable(t["bfloat16"]),
        "i8": tf.Variable(t["int8"]), "i16": tf.Variable(t["int16"]), "i32": tf.Variable(t["int32"]),
        "i64": tf.Variable(t["int64"]), "u8": tf.Variable(t["uint8"]), "u16": tf.Variable(t["uint16"]),
        "u32": tf.Variable(t["uint32"]), "u64": tf.Variable(t["uint64"]),
        "flag": tf.Variable(t["bool"]), "c64": tf.Variable(t["complex64"]), "c128": tf.Variable(t["complex128"]),
        "s": tf.Variable(tf.constant(t["string"], tf.string)), "step": tf.Variable(7, dtype=tf.int64),
        "empty": tf.Variable(np.zeros([0, 2], np.float32)),
        "table": {"a/b": tf.Variable(1.0), "c.d": tf.Variable(2.0)},
    }
    ckpt = tf.train.Checkpoint(**variables)
    obj = ckpt.write(os.path.join(root, "object", "ckpt"))
    expected = {"inputs": {k: encode_array(v) for k, v in t.items()}}
    record(root, expected, prefixes=[os.path.join(d, "bundle"), obj])
    return expected


def part_tf1_saver(root):
    """A TF1 `Saver` (name-based): absolute paths in the state file, Adam slots, a partitioned variable."""
    import numpy as np
    import tensorflow as tf
    v1 = tf.compat.v1
    d = os.path.join(root, "run")
    with tf.Graph().as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, 3])
        step = v1.train.get_or_create_global_step()
        with v1.variable_scope("dense"):
            kernel = v1.get_variable("kernel", [3, 2], use_resource=False,
                                     initializer=v1.constant_initializer(np.arange(6).reshape(3, 2) / 10))
            bias = v1.get_variable("bias", [2], use_resource=False, initializer=v1.constant_initializer(0.5))
        with v1.variable_scope("bert/embeddings"):
            emb = v1.get_variable("word_embeddings", [10, 4], use_resource=False,
                                  partitioner=v1.fixed_size_partitioner(3, axis=0),
                                  initializer=v1.random_normal_initializer(seed=1))
        ids = v1.constant([1, 5, 9])
        loss = tf.reduce_sum(tf.matmul(x, kernel) + bias) + tf.reduce_sum(tf.nn.embedding_lookup(emb, ids))
        train = v1.train.AdamOptimizer(0.1).minimize(loss, global_step=step)
        saver = v1.train.Saver(max_to_keep=5)
        with v1.Session() as sess:
            sess.run(v1.global_variables_initializer())
            feed = {x: np.ones((2, 3), np.float32)}
            sess.run(train, feed)
            first = saver.save(sess, os.path.join(d, "model.ckpt"), global_step=1, write_meta_graph=False)
            sess.run(train, feed)
            sess.run(train, feed)
            last = saver.save(sess, os.path.join(d, "model.ckpt"), global_step=step, write_meta_graph=False)
    expected = {}
    record(root, expected, prefixes=[first, last], directories=[d])
    return expected


def part_tf1_sharded(root):
    """TF1 `Saver(sharded=True)` over two CPU devices: one data file per device."""
    import numpy as np
    import tensorflow as tf
    v1 = tf.compat.v1
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    d = os.path.join(root, "run")
    os.makedirs(d)
    with tf.Graph().as_default():
        with tf.device("/cpu:0"):
            v1.get_variable("w", initializer=np.arange(12, dtype=np.float32).reshape(4, 3), use_resource=False)
            v1.get_variable("b", initializer=np.array([1, 2, 3], np.float32), use_resource=False)
            v1.get_variable("count", initializer=np.int64(9), use_resource=False)
        with tf.device("/cpu:1"):
            v1.get_variable("d", initializer=np.arange(6, dtype=np.float64).reshape(3, 2), use_resource=False)
            v1.get_variable("h", initializer=np.array([0.5, -1], np.float16), use_resource=False)
            v1.get_variable("names", initializer=tf.constant([b"alpha", b"", b"gamma"]), use_resource=False)
        saver = v1.train.Saver(sharded=True, save_relative_paths=True)
        with v1.Session(config=v1.ConfigProto(device_count={"CPU": 2})) as sess:
            sess.run(v1.global_variables_initializer())
            path = saver.save(sess, os.path.join(d, "model.ckpt"), global_step=7)
    expected = {}
    record(root, expected, prefixes=[path], directories=[d])
    return expected


def part_tf2_sharded(root):
    """TF2 `MaxShardSizePolicy`: three data files, tensors split across them as slices."""
    import numpy as np
    import tensorflow as tf
    values = {f"v{i}": tf.Variable(np.arange(100, dtype=np.float32) + 100 * i) for i in range(6)}
    values["label"] = tf.Variable([b"shard", b"me"])
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=1000)
    options = tf.train.CheckpointOptions(experimental_sharding_callback=policy)
    path = tf.train.Checkpoint(**values).write(os.path.join(root, "ckpt"), options=options)
    expected = {}
    record(root, expected, prefixes=[path])
    return expected


def _guide(root, optimizer_factory):
    """The TF guide "Training checkpoints" with tf_keras: a CheckpointManager directory (ckpt-3..5)."""
    import tensorflow as tf
    import tf_keras

    class Net(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.l1 = tf_keras.layers.Dense(5)

        def call(self, x):
            return self.l1(x)

    def toy_dataset():
        inputs = tf.range(10.)[:, None]
        labels = inputs * 5. + tf.range(5.)[None, :]
        return tf.data.Dataset.from_tensor_slices(dict(x=inputs, y=labels)).repeat().batch(2)

    tf.random.set_seed(0)
    net, opt = Net(), optimizer_factory()
    dataset = toy_dataset()
    iterator = iter(dataset)
    ckpt = tf.train.Checkpoint(step=tf.Variable(1), optimizer=opt, net=net, iterator=iterator)
    d = os.path.join(root, "tf_ckpts")
    manager = tf.train.CheckpointManager(ckpt, d, max_to_keep=3)
    for _ in range(50):
        example = next(iterator)
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(net(example["x"]) - example["y"]))
        grads = tape.gradient(loss, net.trainable_variables)
        opt.apply_gradients(zip(grads, net.trainable_variables))
        ckpt.step.assign_add(1)
        if int(ckpt.step) % 10 == 0:
            manager.save()
    x = tf.range(4.)[:, None]
    expected = {"inputs": {"x": encode_array(x.numpy())}, "predictions": encode_array(net(x).numpy()),
                "weights": {v.name: encode_array(v.numpy()) for v in net.weights},
                "optimizer_variables": {v.name: encode_array(v.numpy()) for v in _variables(opt)}}
    record(root, expected, prefixes=list(manager.checkpoints), directories=[d])
    return expected


def part_guide(root):
    import tf_keras
    return _guide(root, lambda: tf_keras.optimizers.Adam(0.1))


def part_guide_legacy(root):
    import tf_keras
    return _guide(root, lambda: tf_keras.optimizers.legacy.Adam(0.1))


def _variables(optimizer):
    found = optimizer.variables  # a method on tf_keras's legacy optimizers, a property elsewhere
    return found() if callable(found) else found


def _data(n=32, features=6, classes=3, seed=0):
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    return x, rng.integers(0, classes, size=n).astype("int64")


def _model_record(model, x):
    return {"predictions": encode_array(model.predict(x, verbose=0)),
            "weights": [[w.name, encode_array(w.numpy())] for w in model.weights],
            "optimizer_variables": [[v.name, encode_array(v.numpy())] for v in _variables(model.optimizer)]}


def part_tf_keras(root):
    """tf_keras 2 `save_weights("cp.ckpt")` (TensorFlow format) for Sequential, functional, subclassed."""
    import tensorflow as tf
    import tf_keras
    L = tf_keras.layers
    tf_keras.utils.set_random_seed(0)
    x, y = _data()

    class TwoDense(tf_keras.Model):
        def __init__(self):
            super().__init__()
            self.dense1 = L.Dense(8, activation="relu")
            self.dense2 = L.Dense(3)

        def call(self, inputs):
            return self.dense2(self.dense1(inputs))

    inputs = tf_keras.Input((6,))
    h = L.Dense(8)(inputs)
    h = L.BatchNormalization()(h)
    functional = tf_keras.Model(inputs, L.Dense(3)(h))
    models = {
        "sequential": tf_keras.Sequential([L.Dense(8, activation="relu", input_shape=(6,)), L.Dropout(0.2), L.Dense(3)]),
        "functional": functional,
        "subclassed": TwoDense(),
    }
    expected = {"inputs": {"x": encode_array(x)}, "models": {}}
    prefixes, directories = [], []
    for name, model in models.items():
        model.compile(optimizer="adam", loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        d = os.path.join(root, name, "training_1")
        path = os.path.join(d, "cp.ckpt")
        callback = tf_keras.callbacks.ModelCheckpoint(path, save_weights_only=True)  # the tutorial's way
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback])
        prefixes.append(path)
        directories.append(d)
        expected["models"][name] = _model_record(model, x)
        expected["models"][name]["config"] = json.loads(model.to_json()) if name != "subclassed" else None
    record(root, expected, prefixes=prefixes, directories=directories)
    return expected


def part_keras3_tf(root):
    """Keras 3 on the TensorFlow backend: `tf.train.Checkpoint(model=..., optimizer=..., step=...)`."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    x, y = _data(features=3)

    class TwoDense(keras.Model):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.dense_1 = keras.layers.Dense(4, activation="relu")
            self.dense_2 = keras.layers.Dense(2)

        def build(self, input_shape):
            self.dense_1.build(input_shape)
            self.dense_2.build((input_shape[0], 4))

        def call(self, inputs):
            return self.dense_2(self.dense_1(inputs))

    models = {"subclassed": TwoDense(),
              "sequential": keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"),
                                              keras.layers.Dense(2)])}
    expected = {"inputs": {"x": encode_array(x)}, "models": {}}
    prefixes, directories = [], []
    for name, model in models.items():
        model.compile(optimizer=keras.optimizers.Adam(0.01),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        model.fit(x, y % 2, epochs=2, batch_size=8, verbose=0)
        d = os.path.join(root, name)
        ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, step=tf.Variable(8, dtype=tf.int64))
        prefixes.append(ckpt.save(os.path.join(d, "ckpt")))
        directories.append(d)
        expected["models"][name] = _model_record(model, x)
    record(root, expected, prefixes=prefixes, directories=directories)
    return expected


def part_keras3_tf_functional(root):
    """Keras 3 on TensorFlow, a functional model (layers under `model/_operations/N`, BatchNormalization's
    moving statistics only there) with SGD momentum: `tf.train.Checkpoint(model=..., optimizer=...)`."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf
    keras.utils.set_random_seed(0)
    x, y = _data(features=3)
    inputs = keras.Input((3,))
    h = keras.layers.BatchNormalization()(keras.layers.Dense(4)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2)(h))
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y % 2, epochs=2, batch_size=8, verbose=0)
    prefix = tf.train.Checkpoint(model=model, optimizer=model.optimizer).save(os.path.join(root, "functional", "ckpt"))
    expected = {"inputs": {"x": encode_array(x)}, "models": {"functional": _model_record(model, x)}}
    record(root, expected, prefixes=[prefix])
    return expected


# ---------------------------------------------------------------------------------------------- driver
def run_part(name, out_root):
    tmp = tempfile.mkdtemp(prefix=f"kerasckpt-tf-{name}-")
    try:
        expected = globals()[f"part_{name}"](tmp)
        import tensorflow as tf
        import tf_keras
        expected["written_by"] = {"tensorflow": tf.__version__, "tf_keras": tf_keras.__version__}
        with open(os.path.join(tmp, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1, sort_keys=True)
        dest = os.path.join(out_root, name)
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(tmp, dest, ignore=shutil.ignore_patterns("*.tempstate*"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the TF1 state file's absolute paths now name nothing
    # What TensorFlow's latest_checkpoint says once the files moved (an absolute path that names nothing: None).
    moved = {}
    for rel in expected.get("latest_checkpoint", {}):
        found = tf.train.latest_checkpoint(os.path.join(dest, rel))
        moved[rel] = None if found is None else os.path.relpath(found, dest)
    if moved:
        expected["latest_checkpoint_moved"] = moved
        with open(os.path.join(dest, "expected.json"), "w") as f:
            json.dump(expected, f, indent=1, sort_keys=True)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--part":
        run_part(args[1], args[2] if len(args) > 2 else HERE)
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    for name in args or PARTS:
        print("writing", name, flush=True)
        subprocess.run([sys.executable, os.path.abspath(__file__), "--part", name, HERE], check=True, env=env)


if __name__ == "__main__":
    main()
