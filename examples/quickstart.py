"""Quickstart: train a classifier on a synthetic 10-class data set and report its validation accuracy.

Run: python examples/quickstart.py
"""
import time

import numpy as np

import kerasckpt
from kerasckpt import layers


def make_data(n=12000, features=32, classes=10, seed=0):
    """Ten noisy Gaussian clusters in 32 dimensions, mixed through a random rotation."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.0, size=(classes, features)) * 0.7
    labels = rng.integers(0, classes, size=n)
    x = centers[labels] + rng.normal(0, 1.0, size=(n, features))
    x = x @ np.linalg.qr(rng.normal(size=(features, features)))[0]
    return x.astype("float32"), labels


def main():
    kerasckpt.utils.set_random_seed(42)
    x, y = make_data()
    model = kerasckpt.Sequential([
        layers.Input(shape=(x.shape[1],)),
        layers.Dense(128, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.2),
        layers.Dense(64, activation="relu"),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.summary()
    start = time.perf_counter()
    history = model.fit(x, y, batch_size=64, epochs=8, validation_split=0.2, verbose=2)
    seconds = time.perf_counter() - start
    val_acc = history.history["val_accuracy"][-1]
    print(f"trained in {seconds:.1f} s; final validation accuracy {val_acc:.4f}")
    if val_acc < 0.95:
        raise SystemExit(f"validation accuracy {val_acc:.4f} is below the 0.95 this example promises")


if __name__ == "__main__":
    main()
