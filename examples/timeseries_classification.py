"""
Title: Timeseries classification from scratch
Author: [hfawaz](https://github.com/hfawaz/)
Date created: 2020/07/21
Last modified: 2023/11/10
Description: Training a timeseries classifier from scratch on the FordA dataset from the UCR/UEA archive.

The keras.io example (https://keras.io/examples/timeseries/timeseries_classification_from_scratch/), run by
kerasckpt: the code is Keras's except for the import; the FordA download is replaced by small synthetic
series of the same length and labels (-1/1), training is shortened to a few epochs, and the plots
(matplotlib, `keras.utils.plot_model`) are left out. The example itself keeps the best model with
`ModelCheckpoint` and reloads it; a check at the end compares it with the best validation loss seen.

Run: python examples/timeseries_classification.py
"""

"""
## Setup
"""

import os
import shutil
import tempfile

import kerasckpt as keras
import numpy as np

"""
## Load the data: the FordA dataset
"""


def readucr(split, n, length=500, seed=0):
    """A stand-in for reading FordA_TRAIN.tsv / FordA_TEST.tsv: `n` noisy series of `length` steps, class 1
    a faster oscillation than class -1; returns (x, y) with y in {-1, 1}, as the original readucr does."""
    rng = np.random.default_rng(seed + (split == "TEST"))
    y = rng.choice([-1, 1], n)
    t = np.arange(length) / length
    freq = np.where(y == 1, 11.0, 5.0)[:, None] + rng.normal(0, 0.5, (n, 1))
    x = np.sin(2 * np.pi * freq * t + rng.uniform(0, 2 * np.pi, (n, 1))) + rng.normal(0, 0.5, (n, length))
    return x, y.astype(int)


x_train, y_train = readucr("TRAIN", 160)
x_test, y_test = readucr("TEST", 64)

classes = np.unique(np.concatenate((y_train, y_test), axis=0))

"""
## Standardize the data
"""

x_train = x_train.reshape((x_train.shape[0], x_train.shape[1], 1))
x_test = x_test.reshape((x_test.shape[0], x_test.shape[1], 1))

num_classes = len(np.unique(y_train))

idx = np.random.permutation(len(x_train))
x_train = x_train[idx]
y_train = y_train[idx]

y_train[y_train == -1] = 0
y_test[y_test == -1] = 0

"""
## Build a model
"""


def make_model(input_shape):
    input_layer = keras.layers.Input(input_shape)

    conv1 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(input_layer)
    conv1 = keras.layers.BatchNormalization()(conv1)
    conv1 = keras.layers.ReLU()(conv1)

    conv2 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv1)
    conv2 = keras.layers.BatchNormalization()(conv2)
    conv2 = keras.layers.ReLU()(conv2)

    conv3 = keras.layers.Conv1D(filters=64, kernel_size=3, padding="same")(conv2)
    conv3 = keras.layers.BatchNormalization()(conv3)
    conv3 = keras.layers.ReLU()(conv3)

    gap = keras.layers.GlobalAveragePooling1D()(conv3)

    output_layer = keras.layers.Dense(num_classes, activation="softmax")(gap)

    return keras.models.Model(inputs=input_layer, outputs=output_layer)


model = make_model(input_shape=x_train.shape[1:])

"""
## Train the model
"""

epochs = 4  # 500 in the original
batch_size = 32

directory = tempfile.mkdtemp()
callbacks = [
    keras.callbacks.ModelCheckpoint(
        os.path.join(directory, "best_model.keras"), save_best_only=True, monitor="val_loss"
    ),
    keras.callbacks.ReduceLROnPlateau(
        monitor="val_loss", factor=0.5, patience=20, min_lr=0.0001
    ),
    keras.callbacks.EarlyStopping(monitor="val_loss", patience=50, verbose=1),
]
model.compile(
    optimizer="adam",
    loss="sparse_categorical_crossentropy",
    metrics=["sparse_categorical_accuracy"],
)
history = model.fit(
    x_train,
    y_train,
    batch_size=batch_size,
    epochs=epochs,
    callbacks=callbacks,
    validation_split=0.2,
    verbose=1,
)

"""
## Evaluate model on test data
"""

model = keras.models.load_model(os.path.join(directory, "best_model.keras"))

test_loss, test_acc = model.evaluate(x_test, y_test)

print("Test accuracy", test_acc)
print("Test loss", test_loss)

"""
## Check the reloaded best model (added for kerasckpt)
"""

x_val, y_val = x_train[-len(x_train) // 5:], y_train[-len(x_train) // 5:]  # what validation_split held out
best_val_loss = min(history.history["val_loss"])
reloaded_val_loss = model.evaluate(x_val, y_val, verbose=0)[0]
predictions = model.predict(x_test, verbose=0)
print(f"best model reloaded: val_loss {reloaded_val_loss:.5f} (best seen {best_val_loss:.5f}), "
      f"{predictions.shape[0]} test predictions")
shutil.rmtree(directory)
if abs(reloaded_val_loss - best_val_loss) > 1e-5 or predictions.shape != (len(x_test), num_classes):
    raise SystemExit("the reloaded best model does not reproduce the best validation loss")
