"""
Title: Text classification from scratch
Authors: Mark Omernick, Francois Chollet
Date created: 2019/11/06
Last modified: 2020/05/17
Description: Text sentiment classification starting from raw text files.

The keras.io example (https://keras.io/examples/nlp/text_classification_from_scratch/) from the layers
onward, run by kerasckpt: the model, compile and fit code is Keras's except for the import. The IMDB text
files and their `TextVectorization` are replaced by what that layer outputs for them, small synthetic
arrays of the same shape and dtype (int64 word indices, 500 per review, no download); training is
shortened, and `ModelCheckpoint` keeps the best model, which is reloaded and checked at the end.

Run: python examples/text_classification_from_scratch.py
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

# Model constants.
max_features = 20000
embedding_dim = 128
sequence_length = 500


def vectorized_reviews(n, seed):
    """What `vectorize_layer` gives for `n` IMDB reviews: (n, 500) int64 word indices (0 pads, 1 is the
    out-of-vocabulary index, frequent words have small indices) and 0/1 labels, positive reviews using a
    few "positive" words more often, negative ones a few "negative" words."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    lengths = rng.integers(80, sequence_length + 1, n)
    words = np.minimum(rng.zipf(1.3, (n, sequence_length)) + 1, max_features - 1)
    cues = np.where(labels[:, None] == 1, rng.integers(10, 20, (n, sequence_length)),
                    rng.integers(20, 30, (n, sequence_length)))
    words = np.where(rng.random((n, sequence_length)) < 0.1, cues, words)
    words[np.arange(sequence_length)[None, :] >= lengths[:, None]] = 0
    return words.astype("int64"), labels.astype("int64")


keras.utils.set_random_seed(1337)
x_train, y_train = vectorized_reviews(320, seed=0)
x_val, y_val = vectorized_reviews(64, seed=1)
x_test, y_test = vectorized_reviews(64, seed=2)

"""
## Build a model

We choose a simple 1D convnet starting with an `Embedding` layer.
"""

# A integer input for vocab indices.
inputs = keras.Input(shape=(None,), dtype="int64")

# Next, we add a layer to map those vocab indices into a space of dimensionality
# 'embedding_dim'.
x = layers.Embedding(max_features, embedding_dim)(inputs)
x = layers.Dropout(0.5)(x)

# Conv1D + global max pooling
x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.Conv1D(128, 7, padding="valid", activation="relu", strides=3)(x)
x = layers.GlobalMaxPooling1D()(x)

# We add a vanilla hidden layer:
x = layers.Dense(128, activation="relu")(x)
x = layers.Dropout(0.5)(x)

# We project onto a single unit output layer, and squash it with a sigmoid:
predictions = layers.Dense(1, activation="sigmoid", name="predictions")(x)

model = keras.Model(inputs, predictions)

# Compile the model with binary crossentropy loss and an adam optimizer.
model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])

"""
## Train the model
"""

epochs = 2  # 3 in the original

directory = tempfile.mkdtemp()
checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(directory, "best_model.keras"), save_best_only=True,
                                             monitor="val_loss")
# Fit the model using the train and test datasets.
history = model.fit(x_train, y_train, batch_size=32, validation_data=(x_val, y_val), epochs=epochs,
                    callbacks=[checkpoint])

"""
## Evaluate the model on the test set
"""

model.evaluate(x_test, y_test, batch_size=32)

"""
## Reload the best model and check it
"""

best = keras.models.load_model(os.path.join(directory, "best_model.keras"))
best_val_loss = min(history.history["val_loss"])
reloaded_val_loss = best.evaluate(x_val, y_val, verbose=0)[0]
accuracy = float(((best.predict(x_test, verbose=0)[:, 0] > 0.5) == y_test).mean())
print(f"best model reloaded: val_loss {reloaded_val_loss:.5f} (best seen {best_val_loss:.5f}), "
      f"test accuracy {accuracy:.3f}")
shutil.rmtree(directory)
if abs(reloaded_val_loss - best_val_loss) > 1e-5:
    raise SystemExit("the reloaded best model does not reproduce the best validation loss")
