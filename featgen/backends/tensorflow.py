"""The Backend protocol on TensorFlow/Keras 3. One of the two modules that import a framework.

Layer outputs are captured by running the model's functional graph node by node (the same walk
that ``keras.Model.call`` does), recording each layer's output by name. Nested functional and
Sequential models are walked recursively; their inner layers are named ``outer/inner`` (Keras
forbids ``/`` in layer names, so the path is unambiguous). Each (model, captured layers, logits?,
replaced layers, ReLU mode) combination is traced once into a ``tf.function``; in the traced graph
the layers that no requested output depends on are pruned, which is how renders skip the tail.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter off users' terminals

# Lines TensorFlow's C++ side writes to stderr on import whatever TF_CPP_MIN_LOG_LEVEL says (absl
# logs them before its log level is read): one per render worker would crowd out a build's output.
_START_CHATTER = ("All log messages before absl::InitializeLog() is called", "oneDNN custom operations are on")


@contextlib.contextmanager
def _quiet_start() -> Iterator[None]:
    """Hold back file descriptor 2 while TensorFlow imports, then pass on all but its known chatter."""
    import sys
    import tempfile

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr: nothing to quiet
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            lines = held.read().decode(errors="replace").splitlines(keepends=True)
            kept = "".join(line for line in lines if not any(c in line for c in _START_CHATTER))
            if kept:
                sys.stderr.write(kept)


with _quiet_start():
    import keras
    import tensorflow as tf
import numpy as np  # noqa: E402

from ..errors import FeatgenError  # noqa: E402
from ..limits import short  # noqa: E402
from .base import DEAD_ROW_PROBE, ForwardResult, InputNormalization, SpatialOp, bn_affine  # noqa: E402


class _ExpectedRetracing:
    """Drop TensorFlow's "triggered tf.function retracing" warning: featgen traces one graph per set
    of captured layers by design, which that heuristic mistakes for a bug in the caller's code."""

    def filter(self, record) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


tf.get_logger().addFilter(_ExpectedRetracing())

_SEP = "/"
PRE_ACTIVATION = ":pre"  # suffix: a layer's output before its fused activation (for FullGrad)
_SKIP = (keras.layers.InputLayer, keras.layers.Dropout)


def _axis(axis):
    return list(axis) if isinstance(axis, (list, tuple)) else axis


def _functional(layer) -> Any:
    """The functional graph behind a Functional or built Sequential model, or None (a plain layer,
    or a subclassed model, whose graph lives inside its own ``call``)."""
    if isinstance(layer, keras.Sequential):
        return getattr(layer, "_functional", None)
    return layer if isinstance(layer, keras.Model) and hasattr(layer, "_run_through_graph") else None


# the names TensorFlow opens a root name scope with; each Keras layer runs in a scope of its own name
_SCOPE_NAME = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*")


def check_layer_names(module, source: str) -> None:
    """One line naming the first layer (nested ones too) whose name TensorFlow cannot open a name
    scope with, before a traced call fails deep inside Keras (``source`` names the model's file)."""

    def layers(model) -> Iterator[Any]:
        for layer in getattr(model, "layers", ()):
            yield layer
            inner = _functional(layer)
            if inner is not None:
                yield from layers(inner)

    for layer in layers(module):
        if not _SCOPE_NAME.fullmatch(str(layer.name)):
            raise FeatgenError(f"{source}: TensorFlow cannot run a layer named {short(layer.name)} (a layer name holds "
                               "letters, digits and _ . - > only, and starts with a letter, a digit or a dot): "
                               "rename the layer in Keras and save the model again.")  # fmt: skip


def _is_subclassed(model) -> bool:
    return isinstance(model, keras.Model) and _functional(model) is None


# --- ReLU variants (Lucid's redirection, guided backprop) ------------------------------------------
def _redirected_grad(t, g, lo: float, hi: float | None, sparse: bool):
    """Lucid's redirected ReLU: for an image that no gradient would reach, let through the part
    that pushes blocked inputs back towards the active range (``min(g, 0)`` below it, ``max(g, 0)``
    above it).

    The native ReLU gradient, a search for the images with no passing gradient, and the
    redirected gradient for those images only when ``sparse`` (on the CPU: no device to wait for;
    the search then probes each image's first entries, :func:`_dead_rows`); masked over every image
    otherwise, after one reduction over every entry. Such images are rare, and this runs on every
    ReLU of every redirected step."""
    if hi is None and lo == 0.0:
        passed = tf.raw_ops.ReluGrad(gradients=g, features=t)
    elif lo == 0.0 and hi == 6.0:
        passed = tf.raw_ops.Relu6Grad(gradients=g, features=t)
    else:
        inside = (t > lo) if hi is None else (t > lo) & (t < hi)
        passed = tf.where(inside, g, tf.zeros_like(g))
    rows = tf.reshape(passed, [tf.shape(passed)[0], -1])
    if not sparse:
        dead = tf.logical_not(tf.reduce_any(rows != 0, axis=1))  # NaN != 0: a NaN row is not dead
        mask = tf.reshape(tf.cast(dead, g.dtype), [-1] + [1] * (len(g.shape) - 1))
        return passed + mask * _pull(t, g, lo, hi)
    idx = _dead_rows(rows)[:, None]
    return tf.tensor_scatter_nd_add(passed, idx, _pull(tf.gather_nd(t, idx), tf.gather_nd(g, idx), lo, hi))


def _dead_rows(rows, probe: int = DEAD_ROW_PROBE):
    """Indices of the all-zero rows of ``(batch, n)`` ``rows`` (a NaN is not zero), reading each
    row's first ``probe`` entries and in full only the rows that are zero there: on Lite0's widest
    ReLU6 input (16 × 71 × 71 × 96) 0.7 ms on the CPU, against 4–5 ms for a reduction over every entry."""
    suspects = tf.where(tf.logical_not(tf.reduce_any(rows[:, :probe] != 0, axis=1)))[:, 0]
    alive = tf.reduce_any(tf.gather(rows, suspects) != 0, axis=1)
    return tf.boolean_mask(suspects, tf.logical_not(alive))


def _pull(t, g, lo: float, hi: float | None):
    """The descent direction that moves blocked inputs back into (lo, hi)."""
    if hi is None:
        return tf.minimum(g, 0.0)
    return tf.where(t < (lo + hi) / 2.0, tf.minimum(g, 0.0), tf.maximum(g, 0.0))


def _guided_grad(t, g, lo: float, hi: float | None, sparse: bool):
    """Guided backpropagation: only positive gradients, and only where the input was active."""
    active = t > lo if hi is None else (t > lo) & (t < hi)
    return tf.where(active & (g > 0), g, tf.zeros_like(g))


_GRADS = {"redirect": _redirected_grad, "guided": _guided_grad}


def _clamp(x, lo: float, hi: float | None, mode: str, sparse: bool):
    """clamp(x, lo, hi) whose gradient follows ``mode`` (``"redirect"`` or ``"guided"``)."""

    @tf.custom_gradient
    def f(t):
        y = tf.clip_by_value(t, lo, hi) if hi is not None else tf.maximum(t, lo)
        return y, lambda g: _GRADS[mode](t, g, lo, hi, sparse)

    return f(x)


class _Stop(Exception):
    """Raised once every captured layer has run when no logits are wanted: the walk (and its trace) ends."""


LINEAR = "linear"  # the ReLU mode of linearized(): activations are the identity


def _relu_bounds(fn) -> tuple[float, float | None] | None:
    """(lo, hi) if ``fn`` is Keras' relu or relu6 activation, else None."""
    name = getattr(fn, "__name__", "")
    return {"relu": (0.0, None), "relu6": (0.0, 6.0)}.get(name)


class TensorFlowBackend(InputNormalization):
    """Backend primitives on TensorFlow 2 / Keras 3."""

    name = "tensorflow"

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        gpus = tf.config.list_physical_devices("GPU")
        if device in (None, "auto"):
            device = default_device()
        kind, _, index = device.partition(":")
        device = f"gpu:{index}" if kind in ("cuda", "gpu") and index else "gpu" if kind in ("cuda", "gpu") else "cpu"
        if device != "cpu" and not gpus:
            raise FeatgenError(f"device {device!r} was asked for, but TensorFlow sees no GPU "
                               "(pip install 'featgen[tensorflow-gpu]' on a CUDA machine); use --device cpu.")  # fmt: skip
        self.device = device
        self.dtype = self.precision = "float32" if dtype == "auto" else dtype
        self._tf_device = f"/GPU:{index or 0}" if device != "cpu" else "/CPU:0"
        self._relu_mode: str | None = None
        self.xla = False  # compile traced render steps with XLA (jit_compile)

    # --- tensors -----------------------------------------------------------------------------
    def asarray(self, a, dtype: str | None = None):
        """A tensor on the chosen device (parameters, optimizer state and constants all start here)."""
        with tf.device(self._tf_device):
            if not isinstance(a, (tf.Tensor, tf.Variable)):
                a = tf.convert_to_tensor(np.asarray(a), dtype=dtype or self.dtype)
            return tf.identity(tf.cast(a, dtype or self.dtype))  # identity: a copy made on the device

    def to_numpy(self, t) -> np.ndarray:
        a = t.numpy() if hasattr(t, "numpy") else np.asarray(t)
        return a.astype(np.float32) if a.dtype.kind == "f" else a

    def shape(self, t) -> tuple[int, ...]:
        return tuple(int(d) for d in t.shape)

    def native_input(self, batch: np.ndarray):
        """Keras models take NHWC: the batch as it is."""
        return self.asarray(batch)

    # --- math --------------------------------------------------------------------------------
    sigmoid = staticmethod(tf.sigmoid)
    sqrt = staticmethod(tf.sqrt)
    abs = staticmethod(tf.abs)
    cos = staticmethod(tf.cos)
    sin = staticmethod(tf.sin)
    isfinite = staticmethod(tf.math.is_finite)

    def clip(self, x, lo, hi):
        return tf.clip_by_value(x, lo, hi)

    def where(self, cond, a, b):
        return tf.where(cond, a, b)

    def sum(self, x, axis=None, keepdims=False):
        return tf.reduce_sum(x, axis=_axis(axis), keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return tf.reduce_mean(x, axis=_axis(axis), keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return tf.reduce_max(x, axis=_axis(axis), keepdims=keepdims)

    def min(self, x, axis=None, keepdims=False):
        return tf.reduce_min(x, axis=_axis(axis), keepdims=keepdims)

    def max_and_argmax(self, x, axis):
        return tf.reduce_max(x, axis=axis), tf.argmax(x, axis=axis)

    def reshape(self, x, shape):
        return tf.reshape(x, list(shape))

    def transpose(self, x, perm):
        return tf.transpose(x, list(perm))

    def concat(self, xs, axis=0):
        return tf.concat(list(xs), axis=axis)

    def stack(self, xs, axis=0):
        return tf.stack(list(xs), axis=axis)

    def einsum(self, eq, *xs):
        return tf.einsum(eq, *xs)

    # --- Fourier -----------------------------------------------------------------------------
    def irfft2(self, re, im, size):
        return tf.signal.irfft2d(tf.complex(re, im), fft_length=list(size))

    # --- images ------------------------------------------------------------------------------
    def warp(self, x, matrices, size, mode="reflect"):
        """Bilinear sampling as torch's ``grid_sample(align_corners=False)``, in TensorFlow ops on
        the device: sample positions from the matrices (NumPy or a tensor), then one sparse product."""
        n, h_in, w_in, c = self.shape(x)
        h_out, w_out = size
        m = tf.broadcast_to(tf.reshape(tf.cast(matrices, x.dtype), [-1, 2, 3]), [n, 2, 3])
        ys = tf.cast(tf.range(h_out), x.dtype)[None, :, None] + 0.5
        xs = tf.cast(tf.range(w_out), x.dtype)[None, None, :] + 0.5
        px = m[:, 0, 0, None, None] * xs + m[:, 0, 1, None, None] * ys + m[:, 0, 2, None, None] - 0.5
        py = m[:, 1, 0, None, None] * xs + m[:, 1, 1, None, None] * ys + m[:, 1, 2, None, None] - 0.5
        if mode == "reflect":
            px, py = _reflect(px, w_in), _reflect(py, h_in)
        elif mode == "border":
            px, py = tf.clip_by_value(px, 0.0, w_in - 1.0), tf.clip_by_value(py, 0.0, h_in - 1.0)
        # one pixel of zeros around the image (two after it): every corner of every sample then
        # lands inside, and a sample wholly outside reads zeros with no per-corner masks
        px, py = tf.clip_by_value(px, -1.0, float(w_in)), tf.clip_by_value(py, -1.0, float(h_in))
        x0, y0 = tf.floor(px), tf.floor(py)
        fx, fy = px - x0, py - y0
        w_pad, h_pad = w_in + 3, h_in + 3
        rows0 = (tf.range(n)[:, None, None] * h_pad + tf.cast(y0, tf.int32) + 1) * w_pad + tf.cast(x0, tf.int32) + 1
        idx = [rows0, rows0 + 1, rows0 + w_pad, rows0 + w_pad + 1]
        wts = [(1 - fy) * (1 - fx), (1 - fy) * fx, fy * (1 - fx), fy * fx]
        # the warp as one sparse matrix (4 weights per output pixel) times the pixels: its backward
        # is the transposed product, several times faster on a CPU than a gather's scatter-add
        cols = tf.cast(tf.reshape(tf.stack(idx, -1), [-1]), tf.int64)
        rows = tf.repeat(tf.range(n * h_out * w_out, dtype=tf.int64), 4)
        warp = tf.sparse.SparseTensor(tf.stack([rows, cols], 1), tf.reshape(tf.stack(wts, -1), [-1]),
                                      [n * h_out * w_out, n * h_pad * w_pad])  # fmt: skip
        padded = tf.pad(x, [[0, 0], [1, 2], [1, 2], [0, 0]])
        out = tf.sparse.sparse_dense_matmul(warp, tf.reshape(padded, [n * h_pad * w_pad, c]))
        return tf.reshape(out, [n, h_out, w_out, c])

    def resize(self, x, size):
        return tf.cast(tf.image.resize(x, list(size), method="bilinear", antialias=False), x.dtype)  # resize gives float32

    def conv2d(self, x, kernels, padding="same"):
        k = tf.constant(np.asarray(kernels), dtype=x.dtype)
        return tf.nn.conv2d(x, k, strides=1, padding=padding.upper())

    # --- autodiff ----------------------------------------------------------------------------
    def value_and_grad(self, fn: Callable, x, has_aux: bool = False):
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = fn(x)
            loss = out[0] if has_aux else out
        return out, tape.gradient(loss, x)

    def no_grad(self):
        return contextlib.nullcontext()  # eager TensorFlow records nothing outside a GradientTape

    def eager(self) -> bool:
        """False while a function is being traced (constants made then belong to that graph)."""
        return tf.executing_eagerly()

    def jit(self, fn: Callable, model: Any = None) -> Callable:
        """``fn`` traced once into a graph (static shapes: one trace per render), so a step runs
        without per-op eager dispatch; ``jit_compile`` (XLA) when :attr:`xla` is set."""
        return tf.function(fn, jit_compile=self.xla or None, reduce_retracing=True, autograph=False)

    # --- models ------------------------------------------------------------------------------
    @property
    def _gather_dead(self) -> bool:
        """The redirected ReLU may gather the dead images: on the CPU (no device to wait for), and
        outside XLA (which needs static shapes)."""
        return self.device == "cpu" and not self.xla

    def _call_layer(self, layer, prefix: str, store: dict, wanted: frozenset, replace: dict, folds: dict, stop: bool,
                    *args, **kwargs):  # fmt: skip
        name = prefix + layer.name
        inner = _functional(layer)
        activation = getattr(layer, "activation", None)
        linear = self._relu_mode == LINEAR
        bounds = _relu_bounds(activation) if self._relu_mode and not linear else None
        pre = name + PRE_ACTIVATION
        fold = folds.get(name)
        if fold == "folded":  # the convolution before this BatchNorm has applied it
            out = args[0]
        elif fold is not None:
            kernel, bias = fold
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                out = keras.ops.depthwise_conv(args[0], kernel, strides=layer.strides, padding=layer.padding,
                                               dilation_rate=layer.dilation_rate, data_format=layer.data_format)  # fmt: skip
            else:
                out = layer.convolution_op(args[0], kernel)
            out = out + bias
        elif inner is not None:
            out = self._walk(inner, args, name + _SEP, store, wanted, replace, folds, stop)
        elif bounds is not None or ((pre in wanted or linear) and callable(activation)):
            def patched(t, original=activation, bounds=bounds):
                if pre in wanted:
                    store[pre] = t
                if linear:
                    return t
                return _clamp(t, *bounds, self._relu_mode, self._gather_dead) if bounds is not None else original(t)

            layer.activation = patched
            try:
                out = layer(*args, training=False, **kwargs)
            finally:
                layer.activation = activation
        elif linear and isinstance(layer, (keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.ELU)):  # Activation: above
            out = args[0]
        elif linear and isinstance(layer, keras.layers.MaxPooling2D):
            out = keras.ops.average_pool(args[0], layer.pool_size, layer.strides, layer.padding, layer.data_format)
        elif self._relu_mode and isinstance(layer, keras.layers.ReLU) and not layer.negative_slope and not layer.threshold:
            hi = None if layer.max_value is None else float(layer.max_value)
            out = _clamp(args[0], 0.0, hi, self._relu_mode, self._gather_dead)
        else:
            if isinstance(layer, keras.layers.Layer) and not isinstance(layer, keras.layers.InputLayer):
                kwargs.setdefault("training", False)
            out = layer(*args, **kwargs)
        if name in replace:
            out = replace[name]
        if name in wanted:
            store[name] = out
        if stop and wanted <= store.keys():
            raise _Stop  # every capture is made: nothing after it is traced
        return out

    def _walk(self, graph, inputs, prefix: str, store: dict, wanted: frozenset, replace: dict, folds: dict,
              stop: bool = False):  # fmt: skip
        def op_fn(op):
            return lambda *a, **k: self._call_layer(op, prefix, store, wanted, replace, folds, stop, *a, **k)

        inputs = inputs[0] if len(inputs) == 1 and isinstance(inputs, (list, tuple)) else inputs
        return graph._run_through_graph(inputs, operation_fn=op_fn)

    def _folds(self, model, seen: set) -> dict:
        """``{conv name: (kernel, bias)}`` with each BatchNorm folded in, and ``{bn name: "folded"}``,
        for every conv → BatchNorm pair whose conv output nobody captures or replaces. A folded
        BatchNorm costs nothing in a render step: it has no forward or backward pass of its own."""
        if "tf_bn_pairs" not in model.runtime:
            with tf.init_scope():  # eager constants, even when first asked for inside a trace
                model.runtime["tf_bn_pairs"] = [(c, b, _folded_weights(conv, bn, self.dtype))
                                                for c, conv, b, bn in _bn_pairs(model.module)]  # fmt: skip
        folds: dict = {}
        for conv_name, bn_name, weights in model.runtime["tf_bn_pairs"]:
            if conv_name in seen or conv_name + PRE_ACTIVATION in seen:
                continue
            folds[conv_name], folds[bn_name] = weights, "folded"
        return folds

    def _runner(self, model, capture: tuple[str, ...], logits: bool, replace_keys: tuple[str, ...], compiled: bool = True):
        key = (capture, logits, replace_keys, self._relu_mode, compiled)
        runners = model.runtime.setdefault("tf_runners", {})  # traced graphs live and die with the model
        fn = runners.get(key)
        if fn is None:
            graph = _functional(model.module)
            if graph is None:
                raise FeatgenError(_subclassed_message(model))
            wanted = frozenset(capture)
            folds = self._folds(model, wanted | set(replace_keys))

            def run(inp, replacements):
                store: dict = {}
                try:
                    out = self._walk(graph, [inp], "", store, wanted, dict(zip(replace_keys, replacements)), folds,
                                     stop=bool(capture) and not logits)  # fmt: skip
                except _Stop:
                    out = None
                out = out[0] if isinstance(out, (list, tuple)) else out
                return [store[n] for n in capture], (out if logits else tf.zeros([]))

            fn = tf.function(run, reduce_retracing=True) if compiled else run
            runners[key] = fn
        return fn

    def forward(self, model, x, capture: Sequence[str] = (), logits: bool = True, normalized: bool = False,
                replace: dict | None = None, channels: Sequence[int] | None = None,
                compiled: bool = True) -> ForwardResult:  # fmt: skip
        """See the protocol. ``normalized``: ``x`` is already the model's normalized input.
        ``replace``: ``{layer: NHWC tensor}`` outputs substituted for those layers' own. ``channels``
        is accepted and not used: captures keep every channel.
        ``compiled=False`` runs eagerly, so that a tape can differentiate w.r.t. captured outputs
        (a ``tf.function``'s outputs are all siblings to the tape, not each other's inputs)."""
        capture = tuple(dict.fromkeys(capture))
        replace = replace or {}
        inp = x if normalized else self._normalize(model, tf.convert_to_tensor(x))
        if not capture and _functional(model.module) is None:  # subclassed: logits still work
            return ForwardResult({}, model.module(inp, training=False))
        keys = tuple(replace)
        fn = self._runner(model, capture, logits, keys, compiled)
        with tf.device(self._tf_device):
            acts, out = fn(inp, [tf.convert_to_tensor(replace[k]) for k in keys])
        return ForwardResult(dict(zip(capture, acts)), out if logits else None)

    def tail(self, model, layer: str):
        """None: Keras needs no separate tail, since ``forward(replace={layer: ...})`` traces a graph
        from which TensorFlow prunes everything before the layer."""
        return None

    def activations_and_gradients(self, model, x, layers, score_fn):
        """Compiled: one pass captures the layers, then per layer one pass from its (watched)
        output to the logits, with everything before the layer pruned from the traced graph."""
        x = tf.convert_to_tensor(x)
        acts = self.forward(model, x, capture=layers, logits=False).activations
        grads, scores = {}, None
        for name in layers:
            a = acts[name]
            with tf.GradientTape() as tape:
                tape.watch(a)
                scores = score_fn(self.forward(model, x, logits=True, replace={name: a}).logits)
                total = tf.reduce_sum(scores)
            grads[name] = tape.gradient(total, a)
        return dict(acts), grads, scores

    def input_and_layer_gradients(self, model, x, layers, score_fn, normalized: bool = False):
        """See the protocol: one tape for the input's and the layers' gradients."""
        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            out = self.forward(model, x, capture=layers, logits=True, normalized=normalized, compiled=False)
            outs = [out.activations[n] for n in layers]
            scores = score_fn(out.logits)
            total = tf.reduce_sum(scores)
        grads = tape.gradient(total, [x, *outs])
        grads = [tf.zeros_like(t) if g is None else g for g, t in zip(grads, [x, *outs])]
        return grads[0], dict(zip(layers, grads[1:])), scores

    def bias_sites(self, model) -> list[tuple[str, np.ndarray]]:
        """Conv biases and BatchNormalization's effective biases ``beta - mean * gamma / sqrt(var + eps)``.

        A conv with a fused activation (``activation="relu"``) is hooked before it: its site is
        ``<name>:pre``, which :meth:`forward` captures from inside the layer's call.
        """
        sites = []
        for name, layer in self.iter_layers(model):
            if isinstance(layer, keras.layers.BatchNormalization):
                sites.append((name, _bn_affine(layer)[1].astype(np.float32)))
            elif isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) and getattr(layer, "use_bias", False):
                fused = getattr(layer.activation, "__name__", "linear") != "linear"
                sites.append((name + PRE_ACTIVATION if fused else name, layer.bias.numpy().astype(np.float32)))
        return sites

    @contextlib.contextmanager
    def _relu(self, mode: str):
        previous, self._relu_mode = self._relu_mode, mode
        try:
            yield
        finally:
            self._relu_mode = previous

    def redirected_relu(self, model):
        return self._relu("redirect")

    def guided_relu(self, model):
        """Within the context, ReLU(6) gradients pass only where input and gradient are positive."""
        return self._relu("guided")

    def linearized(self, model):
        """Within the context, activations (fused or layers) pass their input and max pooling averages."""
        return self._relu(LINEAR)

    def iter_layers(self, model) -> Iterator[tuple[str, Any]]:
        if _is_subclassed(model.module):
            return
        yield from _iter(model.module, "")

    def layer_type(self, layer) -> str:
        return type(layer).__name__

    def linear_output(self, model, layer: str) -> str:
        native = dict(self.iter_layers(model)).get(layer)
        fused = getattr(getattr(native, "activation", None), "__name__", "linear") != "linear"
        return layer + PRE_ACTIVATION if fused else layer

    def layer_geometry(self, layer) -> SpatialOp | None:
        def pair(v):
            return (int(v), int(v)) if isinstance(v, int) else tuple(int(a) for a in v)

        if isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)):
            padding = "same" if layer.padding == "same" else (0, 0)
            return SpatialOp(pair(layer.kernel_size), pair(layer.strides), pair(layer.dilation_rate), padding)
        if isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
            padding = "same" if layer.padding == "same" else (0, 0)
            return SpatialOp(pair(layer.pool_size), pair(layer.strides or layer.pool_size), (1, 1), padding)
        if isinstance(layer, keras.layers.ZeroPadding2D):
            (top, _), (left, _) = layer.padding
            return SpatialOp((1, 1), (1, 1), (1, 1), (top, left))  # a shift: the padded rows come first
        return None

    def layer_kernels(self, model, name):
        layer = dict(self.iter_layers(model))[name]
        if isinstance(layer, keras.layers.DepthwiseConv2D):  # (kh, kw, C, 1) -> torch's (kh, kw, 1, C)
            return np.asarray(layer.kernel.numpy(), np.float32).transpose(0, 1, 3, 2)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            return np.asarray(layer.kernel.numpy(), np.float32)
        return None

    def cast_module(self, module: keras.Model) -> keras.Model:
        """A float64 twin of a functional or Sequential model: the same graph and layer names, each
        layer rebuilt with the new dtype, then the weights copied. Keras variables cannot change dtype."""
        if module.dtype == self.dtype:  # the model's variable dtype (Keras' dtype policy)
            return module
        if not _functional(module):
            raise FeatgenError(f"{module.name} is a subclassed Keras model, which featgen cannot rebuild in {self.dtype}: "
                               "use precision='float32', or build it with the functional API or keras.Sequential.")  # fmt: skip

        def rebuild(layer):
            return layer.__class__.from_config({**layer.get_config(), "dtype": self.dtype})

        inputs = [keras.Input(t.shape[1:], dtype=self.dtype, name=t.name) for t in module.inputs]
        twin = keras.models.clone_model(module, input_tensors=inputs if len(inputs) > 1 else inputs[0],
                                        clone_function=rebuild, recursive=True)  # fmt: skip
        twin.set_weights([w.astype(self.dtype) for w in module.get_weights()])
        return twin

    def weights_digest(self, model) -> str:
        h = hashlib.sha256()
        for w in model.module.weights:
            h.update(w.path.encode())
            h.update(np.ascontiguousarray(w.numpy()).tobytes())
        return h.hexdigest()[:16]

    def memory_free(self) -> int | None:
        """None: TensorFlow reports what it uses, not what is free (and takes a GPU's memory as it goes)."""
        return None

    def numerics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"framework": f"tensorflow {tf.__version__}", "device": self.device}
        if self.device == "cpu":
            # 0: not set through the API, so TF_NUM_INTRAOP_THREADS, else one thread per core;
            # oneDNN's kernels follow ONEDNN_MAX_CPU_ISA
            threads = tf.config.threading.get_intra_op_parallelism_threads()
            threads = threads or int(os.environ.get("TF_NUM_INTRAOP_THREADS") or 0) or os.cpu_count()
            out.update(threads=threads, isa=os.environ.get("ONEDNN_MAX_CPU_ISA", "all").lower())
        return out


def _iter(model, prefix: str) -> Iterator[tuple[str, Any]]:
    for layer in model.layers:
        if isinstance(layer, _SKIP):
            continue
        name = prefix + layer.name
        yield name, layer
        inner = _functional(layer)
        if inner is not None:
            yield from _iter(inner, name + _SEP)


def _bn_pairs(model) -> list[tuple[str, Any, str, Any]]:
    """``(conv name, conv, bn name, bn)`` wherever a Conv2D or DepthwiseConv2D with no activation
    feeds an inference BatchNormalization over its channels and nothing else (Keras ports of timm
    and torchvision models declare them so)."""
    layers = dict(_iter(model, ""))
    by_id = {id(layer): name for name, layer in layers.items()}
    pairs = []
    for name, conv in layers.items():
        if not isinstance(conv, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)) or conv.data_format != "channels_last":
            continue
        if getattr(conv.activation, "__name__", "linear") != "linear":
            continue
        consumers = [n.operation for n in getattr(conv, "_outbound_nodes", [])]
        if len(consumers) != 1 or not isinstance(consumers[0], keras.layers.BatchNormalization):
            continue
        bn = consumers[0]
        axis = bn.axis[0] if isinstance(bn.axis, (list, tuple)) and len(bn.axis) == 1 else bn.axis
        if axis in (-1, 3) and id(bn) in by_id:
            pairs.append((name, conv, by_id[id(bn)], bn))
    return pairs


def _bn_affine(bn) -> tuple[np.ndarray, np.ndarray]:
    """An inference BatchNormalization as ``x * scale + shift`` (float64, see :func:`.base.bn_affine`)."""
    return bn_affine(bn.moving_mean.numpy(), bn.moving_variance.numpy(), bn.epsilon,
                     bn.gamma.numpy() if bn.scale else None, bn.beta.numpy() if bn.center else None)  # fmt: skip


def _folded_weights(conv, bn, dtype) -> tuple[Any, Any]:
    """The conv's kernel and bias with the BatchNorm's inference affine map folded in."""
    scale, shift = _bn_affine(bn)
    bias = (conv.bias.numpy() * scale if conv.use_bias else 0.0) + shift
    kernel = conv.kernel.numpy().astype(np.float64)
    if isinstance(conv, keras.layers.DepthwiseConv2D):  # (kh, kw, in, multiplier): output in * m + j
        kernel = kernel * scale.reshape(kernel.shape[2], kernel.shape[3])
    else:
        kernel = kernel * scale
    return tf.constant(kernel, dtype), tf.constant(bias, dtype)


def _reflect(p, size: int):
    """torch's reflection padding for ``align_corners=False``: reflect about the image's outer edges."""
    lo, span = -0.5, float(size)
    q = tf.abs(p - lo)
    flips = tf.floor(q / span)
    extra = tf.math.floormod(q, span)
    out = tf.where(tf.math.floormod(flips, 2.0) == 0, lo + extra, lo + span - extra)
    return tf.clip_by_value(out, 0.0, size - 1.0)


def _subclassed_message(model) -> str:
    return (
        f"{model.name} is a subclassed Keras model: its layers run inside its own call(), where featgen "
        "cannot reach their outputs. Its logits work (classify, CAM-free uses); to capture layers, build "
        "it with the functional API (keras.Model(inputs, outputs)) or as keras.Sequential."
    )


def default_device() -> str:
    """Where ``"auto"`` runs: the GPU if TensorFlow sees one."""
    return "gpu" if tf.config.list_physical_devices("GPU") else "cpu"


def make_backend(device: str | None = None, dtype: str = "float32") -> TensorFlowBackend:
    return TensorFlowBackend(device, dtype)
