"""A custom training loop: GradientTape, a CallbackList driven by hand, CheckpointManager, and a resume.

Trains a subclassed model for 3 epochs saving a checkpoint per epoch, "restarts" (new model, new
optimizer, restore the latest checkpoint), trains 3 more epochs, and checks the result equals 6
uninterrupted epochs bit for bit.

Run: python examples/custom_training_loop.py
"""
import tempfile

import numpy as np

import kerasckpt
from kerasckpt import layers


class Classifier(kerasckpt.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = layers.Dense(32, activation="relu")
        self.dropout = layers.Dropout(0.2)
        self.head = layers.Dense(4)

    def call(self, inputs, training=False):
        return self.head(self.dropout(self.hidden(inputs), training=training))


def make_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(512, 8)).astype("float32")
    return x, (x[:, :4] @ rng.normal(size=(4, 4))).argmax(axis=1)


def train(epochs, directory, stop_after=None):
    """Train up to `epochs` epochs, resuming from `directory` if a checkpoint is there."""
    kerasckpt.utils.set_random_seed(1)
    x, y = make_data()
    model, optimizer = Classifier(), kerasckpt.optimizers.Adam(1e-2)
    loss_fn = kerasckpt.losses.SparseCategoricalCrossentropy(from_logits=True)
    epoch = kerasckpt.Variable(0, dtype="int64", trainable=False, name="epoch")
    shuffle = kerasckpt.random.SeedGenerator()  # the data order is state too
    ckpt = kerasckpt.Checkpoint(model=model, optimizer=optimizer, epoch=epoch, shuffle=shuffle)
    manager = kerasckpt.CheckpointManager(ckpt, directory, max_to_keep=2)
    restored = manager.restore_or_initialize()  # values for unbuilt layers wait until they are built
    print(f"  {'resumed from ' + restored if restored else 'fresh start'}")
    history = kerasckpt.callbacks.History()
    callbacks = kerasckpt.callbacks.CallbackList([history], model=model, epochs=epochs, steps=16)
    callbacks.on_train_begin()
    while int(epoch.numpy()) < epochs:
        e = int(epoch.numpy())
        callbacks.on_epoch_begin(e)
        order = shuffle.next().permutation(len(x))
        for step in range(16):
            idx = order[step * 32:(step + 1) * 32]
            callbacks.on_train_batch_begin(step)
            with kerasckpt.GradientTape() as tape:
                loss = loss_fn(y[idx], model(x[idx], training=True))
            grads = tape.gradient(loss, model.trainable_weights)
            optimizer.apply_gradients(zip(grads, model.trainable_weights))
            callbacks.on_train_batch_end(step, {"loss": float(loss)})
        epoch.assign(e + 1)
        callbacks.on_epoch_end(e, {"loss": float(loss)})
        print(f"  epoch {e + 1}: loss {float(loss):.4f}, saved {manager.save()}")
        if stop_after is not None and e + 1 == stop_after:
            break
    callbacks.on_train_end()
    return [w.numpy() for w in model.weights + optimizer.variables]


def main():
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        print("uninterrupted, 6 epochs:")
        straight = train(6, a)
        print("3 epochs, then a restart that resumes from the latest checkpoint:")
        train(6, b, stop_after=3)
        resumed = train(6, b)
    identical = all(np.array_equal(p, q) for p, q in zip(straight, resumed, strict=True))
    print(f"resumed run bit-identical to the uninterrupted run: {identical}")
    if not identical:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
