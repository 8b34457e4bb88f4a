"""
Title: Simple MNIST convnet
Author: [fchollet](https://twitter.com/fchollet)
Date created: 2015/06/19
Last modified: 2020/04/21
Description: A simple convnet that achieves ~99% test accuracy on MNIST.

The keras.io example (https://keras.io/examples/vision/mnist_convnet/), run by kerasckpt: the code is
Keras's except for the import; MNIST is replaced by small synthetic arrays of the same shapes and dtypes
(no download), training is shortened to a few epochs, and `ModelCheckpoint` keeps the best model, which is
reloaded and checked at the end.

Run: python examples/mnist_convnet.py
"""

"""
## Setup
"""

import os
import shutil
import tempfile

import numpy as np
import kerasckpt as keras
from kerasckpt import layers


def load_data(train=600, test=100, seed=0):
    """A stand-in for `keras.datasets.mnist.load_data()`: uint8 28x28 images and uint8 labels 0-9, each
    class a fixed random stroke pattern plus noise, so that a convnet learns it in a few epochs."""
    rng = np.random.default_rng(seed)
    patterns = rng.random((10, 28, 28)) < 0.15

    def split(n):
        labels = rng.integers(0, 10, n).astype("uint8")
        images = patterns[labels] * rng.integers(150, 256, (n, 28, 28)) + rng.integers(0, 60, (n, 28, 28))
        return np.clip(images, 0, 255).astype("uint8"), labels

    return split(train), split(test)


"""
## Prepare the data
"""

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
(x_train, y_train), (x_test, y_test) = load_data()

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")


# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

"""
## Build the model
"""

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

"""
## Train the model
"""

batch_size = 128
epochs = 4  # 15 in the original

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

directory = tempfile.mkdtemp()
checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(directory, "best_model.keras"), save_best_only=True,
                                             monitor="val_loss")
history = model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1,
                    callbacks=[checkpoint])

"""
## Evaluate the trained model
"""

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])

"""
## Reload the best model and check it
"""

best = keras.models.load_model(os.path.join(directory, "best_model.keras"))
x_val, y_val = x_train[-len(x_train) // 10:], y_train[-len(x_train) // 10:]  # what validation_split held out
best_val_loss = min(history.history["val_loss"])
reloaded_val_loss = best.evaluate(x_val, y_val, verbose=0)[0]
predictions = best.predict(x_test, verbose=0)
accuracy = float((predictions.argmax(axis=1) == y_test.argmax(axis=1)).mean())
print(f"best model reloaded: val_loss {reloaded_val_loss:.5f} (best seen {best_val_loss:.5f}), "
      f"test accuracy {accuracy:.3f}")
shutil.rmtree(directory)
if abs(reloaded_val_loss - best_val_loss) > 1e-5 or accuracy < 0.5:
    raise SystemExit("the reloaded best model does not reproduce the best validation loss or has not learned")
