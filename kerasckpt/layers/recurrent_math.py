"""The recurrent layers' time loop as one differentiable op: a NumPy forward pass over the sequence and a
hand-written backward pass through time (BPTT), vectorized over the batch and the units.

The input projection `x @ kernel + bias` of every time step is one matrix product before the loop, and
the weight gradients are matrix products over all steps after it; inside the loop there is one matrix
product per step and direction. Masked steps keep the previous states, and output the previous output (or
zeros with `zero_output_for_mask`), as Keras 3's torch backend does.
"""
import numpy as np

from kerasckpt.autograd import needs_grad, record_outputs, recording, value_of


def _sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow for any input


def _relu(x):
    return np.maximum(x, 0)


def _identity(x):
    return x


# activation name -> (function, derivative expressed through the activation's output)
ACTIVATIONS = {
    "tanh": (np.tanh, lambda y: 1.0 - y * y),
    "sigmoid": (_sigmoid, lambda y: y * (1.0 - y)),
    "relu": (_relu, lambda y: (y > 0).astype(y.dtype)),
    "linear": (_identity, lambda y: 1.0),
}


class _Cell:
    """One recurrent cell's step and its backward step, on NumPy arrays.

    `rec_masks` is None, one `(batch, units)` array, or one per gate (Keras's `implementation=1` recurrent
    dropout); `step` returns the new states (the output first) and what `back` needs.
    """

    gates = 1

    def __init__(self, recurrent_kernel, activation, recurrent_activation, rec_masks, recurrent_bias=None):
        self.R = recurrent_kernel
        self.units = recurrent_kernel.shape[0]
        self.act, self.dact = ACTIVATIONS[activation]
        self.ract, self.dract = ACTIVATIONS[recurrent_activation]
        self.rec_masks, self.rb = rec_masks, recurrent_bias
        if isinstance(rec_masks, list):  # per gate: R as (gates, units, units) blocks, h as (gates, batch, units)
            self.blocks = self.R.reshape(self.units, self.gates, self.units).transpose(1, 0, 2)
            self.mask_stack = np.stack(rec_masks)

    def recurrent(self, h):
        """`h @ R` with the recurrent dropout masks; returns it and the inputs that met R."""
        masks = self.rec_masks
        if masks is None:
            return h @ self.R, h
        if not isinstance(masks, list):
            hm = h * masks
            return hm @ self.R, hm
        hm = h[None] * self.mask_stack
        return np.matmul(hm, self.blocks).transpose(1, 0, 2).reshape(h.shape[0], -1), hm

    def recurrent_back(self, drec, rec_in):
        """The gradient for `h` of `recurrent(h)` given the gradient `drec` of its result."""
        masks = self.rec_masks
        if masks is None:
            return drec @ self.R.T
        if not isinstance(masks, list):
            return (drec @ self.R.T) * masks
        per_gate = drec.reshape(drec.shape[0], self.gates, self.units).transpose(1, 0, 2)
        return (np.matmul(per_gate, self.blocks.transpose(0, 2, 1)) * self.mask_stack).sum(axis=0)

    def recurrent_kernel_grad(self, rec_ins, drecs):
        """dR from the stacked inputs that met R and the stacked gradients of the products."""
        if not isinstance(self.rec_masks, list):
            return _stacked_matmul(rec_ins, drecs)
        t, b, k, u = drecs.shape[0], drecs.shape[1], self.gates, self.units
        per_gate = drecs.reshape(t, b, k, u).transpose(2, 0, 1, 3).reshape(k, t * b, u)
        ins = np.stack(rec_ins, axis=1).reshape(k, t * b, u)  # rec_ins: t arrays of (k, b, u)
        return np.matmul(ins.transpose(0, 2, 1), per_gate).transpose(1, 0, 2).reshape(u, k * u)


class SimpleRNNCell(_Cell):
    gates = 1

    def step(self, xp, states):
        rec, rec_in = self.recurrent(states[0])
        h = self.act(xp + rec)
        return [h], (h, rec_in)

    def back(self, d_new, cache):
        h, rec_in = cache
        dz = d_new[0] * self.dact(h)
        return [self.recurrent_back(dz, rec_in)], dz, dz, rec_in


class LSTMCell(_Cell):
    gates = 4

    def step(self, xp, states):
        h_prev, c_prev = states
        u = self.units
        rec, rec_in = self.recurrent(h_prev)
        z = xp + rec
        gates = np.empty_like(z)
        gates[:, :2 * u] = self.ract(z[:, :2 * u])
        gates[:, 2 * u:3 * u] = self.act(z[:, 2 * u:3 * u])
        gates[:, 3 * u:] = self.ract(z[:, 3 * u:])
        i, f, g, o = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:3 * u], gates[:, 3 * u:]
        c = f * c_prev + i * g
        tc = self.act(c)
        return [o * tc, c], (gates, c_prev, tc, rec_in)

    def back(self, d_new, cache):
        gates, c_prev, tc, rec_in = cache
        u = self.units
        i, f, g, o = gates[:, :u], gates[:, u:2 * u], gates[:, 2 * u:3 * u], gates[:, 3 * u:]
        dh, dc = d_new
        dc = dc + dh * o * self.dact(tc)
        dz = np.empty_like(gates)
        dz[:, :u] = dc * g
        dz[:, u:2 * u] = dc * c_prev
        dz[:, 2 * u:3 * u] = dc * i
        dz[:, 3 * u:] = dh * tc
        dz[:, :2 * u] *= self.dract(gates[:, :2 * u])
        dz[:, 2 * u:3 * u] *= self.dact(g)
        dz[:, 3 * u:] *= self.dract(o)
        return [self.recurrent_back(dz, rec_in), dc * f], dz, dz, rec_in


class GRUCell(_Cell):
    """Keras's GRU: gates z, r, h; `reset_after` applies the reset gate after the recurrent product (with
    its own recurrent bias), else to the state before it. Recurrent dropout masks come one per gate."""

    gates = 3

    def __init__(self, recurrent_kernel, activation, recurrent_activation, rec_masks, recurrent_bias=None,
                 reset_after=True):
        super().__init__(recurrent_kernel, activation, recurrent_activation, rec_masks, recurrent_bias)
        self.reset_after = reset_after

    def step(self, xp, states):
        h_prev = states[0]
        u, R = self.units, self.R
        if self.reset_after:
            inner, rec_in = self.recurrent(h_prev)
            if self.rb is not None:
                inner = inner + self.rb
            zr = self.ract(xp[:, :2 * u] + inner[:, :2 * u])
            hh = self.act(xp[:, 2 * u:] + zr[:, u:] * inner[:, 2 * u:])
            cache = (zr, hh, h_prev, inner[:, 2 * u:], rec_in)
        else:  # z, r from h @ R[:, :2u]; the candidate from (r * h) @ R[:, 2u:]
            masks = self.rec_masks
            if masks is None:
                hz = hr = hg = h_prev
                rec_zr = h_prev @ R[:, :2 * u]
            else:
                hz, hr, hg = h_prev * masks[0], h_prev * masks[1], h_prev * masks[2]
                rec_zr = np.concatenate([hz @ R[:, :u], hr @ R[:, u:2 * u]], axis=1)
            zr = self.ract(xp[:, :2 * u] + rec_zr)
            rh = zr[:, u:] * hg
            hh = self.act(xp[:, 2 * u:] + rh @ R[:, 2 * u:])
            cache = (zr, hh, h_prev, hg, (hz, hr, rh))
        z = zr[:, :u]
        return [z * h_prev + (1.0 - z) * hh], cache

    def back(self, d_new, cache):
        u, R = self.units, self.R
        dh = d_new[0]
        zr, hh, h_prev, extra, rec_in = cache
        z, r = zr[:, :u], zr[:, u:]
        dhh = dh * (1.0 - z) * self.dact(hh)
        dzr = np.empty_like(zr)
        dzr[:, :u] = dh * (h_prev - hh)
        dh_prev = dh * z
        if self.reset_after:
            dzr[:, u:] = dhh * extra  # extra: the candidate's recurrent term before the reset gate
            dzr *= self.dract(zr)
            drec = np.concatenate([dzr, dhh * r], axis=1)
            dh_prev = dh_prev + self.recurrent_back(drec, rec_in)
            return [dh_prev], np.concatenate([dzr, dhh], axis=1), drec, rec_in
        hg = extra
        drh = dhh @ R[:, 2 * u:].T
        dzr[:, u:] = drh * hg
        dzr *= self.dract(zr)
        masks = self.rec_masks
        if masks is None:
            dh_prev = dh_prev + dzr @ R[:, :2 * u].T + drh * r
        else:
            dh_prev = dh_prev + ((dzr[:, :u] @ R[:, :u].T) * masks[0] + (dzr[:, u:] @ R[:, u:2 * u].T) * masks[1]
                                 + drh * r * masks[2])
        return [dh_prev], np.concatenate([dzr, dhh], axis=1), (dzr, dhh), rec_in

    def recurrent_kernel_grad(self, rec_ins, drecs):
        if self.reset_after:
            return super().recurrent_kernel_grad(rec_ins, drecs)
        u = self.units
        dzr = np.stack([d[0] for d in drecs])
        grad = np.empty(self.R.shape, dtype=self.R.dtype)
        grad[:, :u] = _stacked_matmul([r[0] for r in rec_ins], dzr[..., :u])
        grad[:, u:2 * u] = _stacked_matmul([r[1] for r in rec_ins], dzr[..., u:])
        grad[:, 2 * u:] = _stacked_matmul([r[2] for r in rec_ins], [d[1] for d in drecs])
        return grad


def _stacked_matmul(a, b):
    """`sum_t a[t].T @ b[t]` for stacks of shape (t, batch, m) and (t, batch, n), as one product."""
    a, b = np.asarray(a), np.asarray(b)
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


_CELLS = {"simple_rnn": SimpleRNNCell, "lstm": LSTMCell, "gru": GRUCell}


def _project(x, kernel, bias, input_masks, gates):
    """`x @ kernel + bias` for every step (time-major), with the input dropout masks (one, or one per gate)."""
    t, b, f = x.shape
    flat = x.reshape(t * b, f)
    if input_masks is None:
        xp = flat @ kernel
    elif not isinstance(input_masks, list):
        xp = (x * input_masks).reshape(t * b, f) @ kernel
    else:
        u = kernel.shape[1] // gates
        xp = np.concatenate([(x * m).reshape(t * b, f) @ kernel[:, g * u:(g + 1) * u]
                             for g, m in enumerate(input_masks)], axis=1)
    if bias is not None:
        xp += bias
    return xp.reshape(t, b, -1)


def _project_back(x, kernel, input_masks, gates, dxp, need_x, need_kernel):
    t, b, f = x.shape
    flat_d = dxp.reshape(t * b, -1)
    dx = dkernel = None
    if input_masks is None or not isinstance(input_masks, list):
        if need_kernel:
            xm = x if input_masks is None else x * input_masks
            dkernel = xm.reshape(t * b, f).T @ flat_d
        if need_x:
            dx = (flat_d @ kernel.T).reshape(t, b, f)
            if input_masks is not None:
                dx *= input_masks
        return dx, dkernel
    u = kernel.shape[1] // gates
    if need_kernel:
        dkernel = np.concatenate([(x * m).reshape(t * b, f).T @ flat_d[:, g * u:(g + 1) * u]
                                  for g, m in enumerate(input_masks)], axis=1)
    if need_x:
        dx = sum((flat_d[:, g * u:(g + 1) * u] @ kernel[:, g * u:(g + 1) * u].T).reshape(t, b, f) * m
                 for g, m in enumerate(input_masks))
    return dx, dkernel


def recurrent_scan(kind, inputs, kernel, recurrent_kernel, bias, initial_states, mask=None, *, go_backwards=False,
                   return_sequences=False, zero_output_for_mask=False, activation="tanh",
                   recurrent_activation="sigmoid", reset_after=True, input_masks=None, recurrent_masks=None):
    """Run a SimpleRNN (`kind="simple_rnn"`), LSTM or GRU over `inputs` (batch, time, features).

    Returns Tensors `[output, *final_states]`: the outputs of every step in processing order (reversed with
    `go_backwards`, as in Keras) or the last step's output, then the states after the last step. Gradients
    flow to the inputs, the weights (kernel, recurrent kernel, bias) and the initial states.
    """
    cell_cls = _CELLS[kind]
    xv = np.asarray(value_of(inputs))
    W, R = value_of(kernel), value_of(recurrent_kernel)
    bv = None if bias is None else value_of(bias)
    b_in, b_rec = bv, None
    if kind == "gru" and bv is not None and bv.ndim == 2:  # reset_after: input and recurrent biases
        b_in, b_rec = bv[0], bv[1]
    states0 = [np.asarray(value_of(s), dtype=xv.dtype) for s in initial_states]
    kwargs = {"reset_after": reset_after} if kind == "gru" else {}
    cell = cell_cls(R, activation, recurrent_activation, recurrent_masks, b_rec, **kwargs)
    x_tm = np.ascontiguousarray(xv.transpose(1, 0, 2))  # time-major: one contiguous slice per step
    if isinstance(input_masks, np.ndarray):
        input_masks = input_masks[None]
    elif isinstance(input_masks, list):
        input_masks = [m[None] for m in input_masks]
    xp = _project(x_tm, W, b_in, input_masks, cell.gates)
    steps = x_tm.shape[0]
    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    mask_tm = None if mask is None else np.asarray(value_of(mask), dtype=bool).T[:, :, None]
    states = states0
    prev_out = np.zeros_like(states0[0])
    outputs = np.empty((steps,) + prev_out.shape, dtype=prev_out.dtype) if return_sequences else None
    caches, keep = [], recording()  # without a tape (inference) no step's values are kept for the backward pass
    for s, t in enumerate(order):
        new, cache = cell.step(xp[t], states)
        if keep:
            caches.append(cache)
        if mask_tm is None:
            out, states = new[0], new
        else:
            m = mask_tm[t]
            out = np.where(m, new[0], 0.0 if zero_output_for_mask else prev_out)
            states = [np.where(m, n, o) for n, o in zip(new, states)]
        prev_out = out
        if return_sequences:
            outputs[s] = out
    result = np.ascontiguousarray(outputs.transpose(1, 0, 2)) if return_sequences else prev_out

    parents = (inputs, kernel, recurrent_kernel, bias) + tuple(initial_states)

    def backward(grads):
        d_out = grads[0]
        d_states = [np.zeros_like(s) if g is None else np.asarray(g, dtype=s.dtype) for g, s in zip(grads[1:], states0)]
        d_seq = None
        d_prev = np.zeros_like(prev_out)
        if d_out is not None:
            if return_sequences:
                d_seq = d_out.transpose(1, 0, 2)
            else:
                d_prev = d_out
        dxp = np.empty_like(xp)
        drecs, rec_ins = [None] * steps, [None] * steps
        for s in range(steps - 1, -1, -1):
            t = order[s]
            g_out = d_prev if d_seq is None else d_prev + d_seq[s]
            if mask_tm is None:
                d_new = [d_states[0] + g_out] + d_states[1:]
                carry = None
                d_prev = 0.0  # an unmasked step's output does not feed the next step's output
            else:
                m = mask_tm[t]
                d_new = [np.where(m, d, 0.0) for d in d_states]
                d_new[0] = d_new[0] + np.where(m, g_out, 0.0)
                carry = [np.where(m, 0.0, d) for d in d_states]
                d_prev = np.zeros_like(g_out) if zero_output_for_mask else np.where(m, 0.0, g_out)
            d_states, dxp[t], drecs[s], rec_ins[s] = cell.back(d_new, caches[s])
            if carry is not None:
                d_states = [a + c for a, c in zip(d_states, carry)]
        need_x, need_w = needs_grad(inputs), needs_grad(kernel)
        dx, dW = _project_back(x_tm, W, input_masks, cell.gates, dxp, need_x, need_w)
        if needs_grad(recurrent_kernel):  # GRU without reset_after keeps a pair of arrays per step
            dR = cell.recurrent_kernel_grad(rec_ins, np.stack(drecs) if isinstance(drecs[0], np.ndarray) else drecs)
        else:
            dR = None
        db = None
        if bias is not None and needs_grad(bias):
            db_in = dxp.sum(axis=(0, 1))
            if b_rec is not None:
                db = np.stack([db_in, np.stack(drecs).sum(axis=(0, 1))])
            else:
                db = db_in
        dx = None if dx is None else dx.transpose(1, 0, 2)
        return (dx, dW, dR, db) + tuple(d_states)

    return record_outputs([result] + states, parents, backward)
