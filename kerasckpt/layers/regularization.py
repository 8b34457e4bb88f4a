"""SpatialDropout1D: dropout of whole feature channels of a sequence."""
import numpy as np

from kerasckpt._registry import builtin
from kerasckpt.autograd import record, value_of
from kerasckpt.layers.core import Dropout


@builtin()
class SpatialDropout1D(Dropout):
    """Drop whole channels of `(batch, time, channels)` inputs during training: one keep/drop draw per sample
    and channel, shared by every step (adjacent steps are strongly correlated, so dropping single entries
    would barely regularize), the kept channels scaled by `1 / (1 - rate)`.

    Args:
        rate: fraction of the channels to drop, in [0, 1).
        seed: seed of this layer's random stream; drawn from the global generator when None.
    """

    def __init__(self, rate, seed=None, name=None, dtype=None):
        super().__init__(rate, seed=seed, name=name, dtype=dtype)

    def call(self, inputs, training=False):
        shape = np.shape(value_of(inputs))
        if len(shape) != 3:
            raise ValueError(f"Input 0 of layer '{self.name}' is incompatible with the layer: expected ndim=3, found "
                             f"ndim={len(shape)}. Full shape received: {shape}")
        if not training or self.rate == 0:
            return inputs
        xv = np.asarray(value_of(inputs))
        keep = self.seed_generator.next().random((shape[0], 1, shape[2]), dtype=np.float32) >= self.rate
        mask = keep.astype(xv.dtype) * np.asarray(1.0 / (1.0 - self.rate), dtype=xv.dtype)

        def backward(g):
            return (g * mask,)
        return record(xv * mask, (inputs,), backward)

    def get_config(self):
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype}
