"""
Title: Text classification with Transformer
Author: [Apoorv Nandan](https://twitter.com/NandanApoorv)
Date created: 2020/05/10
Last modified: 2024/01/18
Description: Implement a Transformer block as a Keras layer and use it for text classification.

The keras.io example (https://keras.io/examples/nlp/text_classification_with_transformer/), run by
kerasckpt: the code, its `TransformerBlock` and `TokenAndPositionEmbedding` layers included, is Keras's
except for the import; the IMDB reviews are replaced by a few hundred synthetic reviews of the same form
(lists of word indices, no download), training is shortened, and `ModelCheckpoint` keeps the best model,
which is reloaded (the two custom layers passed as `custom_objects`) and checked at the end.

Run: python examples/text_classification_with_transformer.py
"""

"""
## Setup
"""

import os
import shutil
import tempfile

import numpy as np
import kerasckpt as keras
from kerasckpt import ops
from kerasckpt import layers


"""
## Implement a Transformer block as a layer
"""


class TransformerBlock(layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super().__init__()
        self.att = layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim)
        self.ffn = keras.Sequential(
            [layers.Dense(ff_dim, activation="relu"), layers.Dense(embed_dim),]
        )
        self.layernorm1 = layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = layers.Dropout(rate)
        self.dropout2 = layers.Dropout(rate)

    def call(self, inputs):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output)
        return self.layernorm2(out1 + ffn_output)


"""
## Implement embedding layer

Two seperate embedding layers, one for tokens, one for token index (positions).
"""


class TokenAndPositionEmbedding(layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super().__init__()
        self.token_emb = layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = layers.Embedding(input_dim=maxlen, output_dim=embed_dim)

    def call(self, x):
        maxlen = ops.shape(x)[-1]
        positions = ops.arange(start=0, stop=maxlen, step=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


"""
## Download and prepare dataset
"""


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
vocab_size = 20000  # Only consider the top 20k words
maxlen = 200  # Only consider the first 200 words of each movie review
(x_train, y_train), (x_val, y_val) = load_data(num_words=vocab_size)
print(len(x_train), "Training sequences")
print(len(x_val), "Validation sequences")
x_train = keras.utils.pad_sequences(x_train, maxlen=maxlen)
x_val = keras.utils.pad_sequences(x_val, maxlen=maxlen)

"""
## Create classifier model using transformer layer

Transformer layer outputs one vector for each time step of our input sequence.
Here, we take the mean across all time steps and
use a feed forward network on top of it to classify text.
"""


embed_dim = 32  # Embedding size for each token
num_heads = 2  # Number of attention heads
ff_dim = 32  # Hidden layer size in feed forward network inside transformer

inputs = layers.Input(shape=(maxlen,))
embedding_layer = TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim)
x = embedding_layer(inputs)
transformer_block = TransformerBlock(embed_dim, num_heads, ff_dim)
x = transformer_block(x)
x = layers.GlobalAveragePooling1D()(x)
x = layers.Dropout(0.1)(x)
x = layers.Dense(20, activation="relu")(x)
x = layers.Dropout(0.1)(x)
outputs = layers.Dense(2, activation="softmax")(x)

model = keras.Model(inputs=inputs, outputs=outputs)


"""
## Train and Evaluate
"""

directory = tempfile.mkdtemp()
checkpoint = keras.callbacks.ModelCheckpoint(os.path.join(directory, "best_model.keras"), save_best_only=True,
                                             monitor="val_loss")
model.compile(
    optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]
)
history = model.fit(
    x_train, y_train, batch_size=32, epochs=2, validation_data=(x_val, y_val), callbacks=[checkpoint]
)

"""
## Reload the best model and check it
"""

best = keras.models.load_model(
    os.path.join(directory, "best_model.keras"),
    custom_objects={"TransformerBlock": TransformerBlock, "TokenAndPositionEmbedding": TokenAndPositionEmbedding},
)
best_val_loss = min(history.history["val_loss"])
reloaded_val_loss, reloaded_accuracy = best.evaluate(x_val, y_val, verbose=0)
print(f"best model reloaded: val_loss {reloaded_val_loss:.5f} (best seen {best_val_loss:.5f}), "
      f"val accuracy {reloaded_accuracy:.3f}")
shutil.rmtree(directory)
if abs(reloaded_val_loss - best_val_loss) > 1e-5:
    raise SystemExit("the reloaded best model does not reproduce the best validation loss")
