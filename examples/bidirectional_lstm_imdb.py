"""
Title: Bidirectional LSTM on IMDB
Author: [fchollet](https://twitter.com/fchollet)
Date created: 2020/05/03
Last modified: 2020/05/03
Description: Train a 2-layer bidirectional LSTM on the IMDB movie review sentiment classification dataset.

The keras.io example (https://keras.io/examples/nlp/bidirectional_lstm_imdb/), run by kerasckpt: the code
is Keras's except for the import; the IMDB reviews are replaced by a few hundred synthetic reviews of the
same form (lists of word indices, no download), training is shortened, and `ModelCheckpoint` keeps the
best model, which is reloaded and checked at the end.

Run: python examples/bidirectional_lstm_imdb.py
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

max_features = 20000  # Only consider the top 20k words
maxlen = 200  # Only consider the first 200 words of each movie review


def load_data(num_words, train=192, test=64, seed=0):
    """A stand-in for `keras.datasets.imdb.load_data(num_words=...)`: reviews as lists of word indices
    (1 starts a review, frequent words have small indices), labels 0/1. Positive reviews use a few
    "positive" words more often, negative ones a few "negative" words."""
    rng = np.random.default_rng(seed)
    positive, negative = np.arange(10, 20), np.arange(20, 30)

    def split(n):
        labels = rng.integers(0, 2, n)
        reviews = []
        for label in labels:
            words = np.minimum(rng.zipf(1.3, rng.integers(60, 300)) + 3, num_words - 1)
            cue = rng.choice(positive if label else negative, size=len(words) // 8)
            words[rng.choice(len(words), size=len(cue), replace=False)] = cue
            reviews.append([1] + words.tolist())
        return reviews, labels.astype("int64")

    return split(train), split(test)


keras.utils.set_random_seed(1337)

"""
## Build the model
"""

# Input for variable-length sequences of integers
inputs = keras.Input(shape=(None,), dtype="int32")
# Embed each integer in a 128-dimensional vector
x = layers.Embedding(max_features, 128)(inputs)
# Add 2 bidirectional LSTMs
x = layers.Bidirectional(layers.LSTM(64, return_sequences=True))(x)
x = layers.Bidirectional(layers.LSTM(64))(x)
# Add a classifier
outputs = layers.Dense(1, activation="sigmoid")(x)
model = keras.Model(inputs, outputs)
model.summary()

"""
## Load the IMDB movie review sentiment data
"""

(x_train, y_train), (x_val, y_val) = load_data(num_words=max_features)
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")
# Use pad_sequence to standardize sequence length:
# this will truncate sequences longer than 200 words and zero-pad sequences shorter than 200 words.
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

"""
## Train and evaluate the model
"""

directory = tempfile.mkdtemp()
checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(directory, "best_model.keras"), save_best_only=True,
                                             monitor="val_loss")
model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, batch_size=32, epochs=2, validation_data=(x_val, y_val),
                    callbacks=[checkpoint])

"""
## Reload the best model and check it
"""

best = keras.models.load_model(os.path.join(directory, "best_model.keras"))
best_val_loss = min(history.history["val_loss"])
reloaded_val_loss, reloaded_accuracy = best.evaluate(x_val, y_val, verbose=0)
print(f"best model reloaded: val_loss {reloaded_val_loss:.5f} (best seen {best_val_loss:.5f}), "
      f"val accuracy {reloaded_accuracy:.3f}")
shutil.rmtree(directory)
if abs(reloaded_val_loss - best_val_loss) > 1e-5:
    raise SystemExit("the reloaded best model does not reproduce the best validation loss")
