"""The Backend protocol: the few framework primitives that featgen's algorithms are written on.

Every algorithm in ``featgen.vis``, ``featgen.cam`` and ``featgen.maps`` is written once against
this protocol. Only ``featgen/backends/`` (and the model sources in ``featgen/models/``) import a
framework.

Conventions shared by all backends
----------------------------------
* Images and spatial activations are **channels-last**: ``(N, H, W, C)``. Dense activations are
  ``(N, C)``. The backend converts to its native layout internally (torch: NCHW views in
  ``channels_last`` memory, which costs nothing).
* Model inputs handed to :meth:`Backend.forward` are RGB in ``[0, 1]``; the backend applies the
  model's :class:`~featgen.models.base.Normalization` inside the differentiable graph.
* Tensors support Python arithmetic (``+ - * / **`` and unary ``-``) in both frameworks; anything
  else goes through the methods below.
* Affine warps map **output** pixel coordinates to **input** pixel coordinates, ``(x, y)`` order,
  continuous coordinates with pixel centres at ``i + 0.5``. Matrices are NumPy ``(N, 2, 3)``.
* Optimization *minimizes* a scalar loss; objectives are negated by the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

Tensor = Any  # a torch.Tensor or a tf.Tensor; algorithms never look inside

# Lucid's redirected ReLU on the CPU: how many leading gradient entries of each image are read before
# an image that shows no gradient there is read in full (an image with a gradient shows one early)
DEAD_ROW_PROBE = 4096


def bn_affine(mean: np.ndarray, var: np.ndarray, eps: float, gamma: np.ndarray | None = None,
              beta: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """An inference-mode batch norm as ``x * scale + shift`` in float64: ``scale = gamma / sqrt(var +
    eps)`` and the effective bias ``shift = beta - mean * scale`` (``gamma``, ``beta``: None when the
    norm has none). Used for FullGrad's bias sites and for folding a norm into the convolution before it."""
    scale = 1.0 / np.sqrt(np.asarray(var, np.float64) + eps)
    if gamma is not None:
        scale = scale * np.asarray(gamma, np.float64)
    offset = 0.0 if beta is None else np.asarray(beta, np.float64)
    return scale, offset - np.asarray(mean, np.float64) * scale


@dataclass
class ForwardResult:
    """What :meth:`Backend.forward` returns: captured activations (channels-last) and logits."""

    activations: dict[str, Tensor] = field(default_factory=dict)
    logits: Tensor | None = None


class InputNormalization:
    """The model's input normalization, written once on :class:`TensorOps` for both backends."""

    def _normalize(self, model: Any, x: Tensor) -> Tensor:
        """``((x * scale)[order] - mean) / std`` (the model's
        :class:`~featgen.models.base.Normalization`) on NHWC ``x`` of the backend's dtype, inside the
        graph. Mean and std are made once per backend: an upload per call would be a host-to-device
        copy on a GPU. Inside a trace they are made as the trace's own constants, and not kept."""
        norm = model.norm
        if norm.scale != 1.0:
            x = x * norm.scale
        if norm.bgr:
            x = self.concat([x[..., 2:3], x[..., 1:2], x[..., :1]], axis=-1)
        consts = self.__dict__.setdefault("_norm_consts", {})
        mean_std = consts.get(norm)
        if mean_std is None:
            mean_std = self.asarray(norm.mean), self.asarray(norm.std)
            if self.eager():
                consts[norm] = mean_std
        mean, std = mean_std
        return (x - mean) / std


class TensorOps(Protocol):
    """The tensor half: arrays on the device, math, Fourier, one warp, gradients of a function.
    Parameterizations, transforms, objectives and the optimizer are written on these alone."""

    name: str  # "torch" or "tensorflow"
    device: str
    dtype: str  # "float32" or "float64": of every tensor asarray makes, and of the model's weights

    # --- tensors -----------------------------------------------------------------------------
    def asarray(self, a: np.ndarray | float, dtype: str | None = None) -> Tensor:
        """A tensor on the backend's device, of ``dtype`` (default: the backend's :attr:`dtype`)."""
        ...

    def to_numpy(self, t: Tensor) -> np.ndarray:
        """A host copy: float32 for any floating tensor (what images and maps are), whatever the
        backend's dtype."""
        ...

    def shape(self, t: Tensor) -> tuple[int, ...]: ...
    def native_input(self, batch: np.ndarray) -> Tensor:
        """A normalized NHWC NumPy batch in the framework's own input layout (torch: NCHW)."""
        ...

    # --- math (elementwise ops use Python operators) -------------------------------------------
    def sigmoid(self, x: Tensor) -> Tensor: ...
    def sqrt(self, x: Tensor) -> Tensor: ...
    def abs(self, x: Tensor) -> Tensor: ...
    def cos(self, x: Tensor) -> Tensor: ...
    def sin(self, x: Tensor) -> Tensor: ...
    def clip(self, x: Tensor, lo: float, hi: float) -> Tensor: ...
    def where(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor: ...
    def sum(self, x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor: ...
    def mean(self, x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor: ...
    def max(self, x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor: ...
    def min(self, x: Tensor, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor: ...
    def max_and_argmax(self, x: Tensor, axis: int) -> tuple[Tensor, Tensor]:
        """The largest values along ``axis`` and their indices (int64; ties: the first), in one pass
        where the framework has one."""
    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor: ...
    def transpose(self, x: Tensor, perm: Sequence[int]) -> Tensor: ...
    def concat(self, xs: Sequence[Tensor], axis: int = 0) -> Tensor: ...
    def stack(self, xs: Sequence[Tensor], axis: int = 0) -> Tensor: ...
    def einsum(self, eq: str, *xs: Tensor) -> Tensor: ...
    def isfinite(self, x: Tensor) -> Tensor: ...

    # --- Fourier -------------------------------------------------------------------------------
    def irfft2(self, re: Tensor, im: Tensor, size: tuple[int, int]) -> Tensor:
        """The inverse real 2-D FFT over the last two axes, from the real and imaginary parts of the
        half spectrum (NumPy's ``irfft2`` with ``s=size``)."""
        ...

    # --- images --------------------------------------------------------------------------------
    def warp(self, x: Tensor, matrices: np.ndarray | Tensor, size: tuple[int, int], mode: str = "reflect") -> Tensor:
        """Bilinear affine warp of NHWC ``x`` to ``size``; see the module docstring's convention.
        ``matrices`` may be a device tensor (render loops upload every step's matrices once)."""
        ...

    def resize(self, x: Tensor, size: tuple[int, int]) -> Tensor:
        """Bilinear resize of NHWC ``x`` (half-pixel centres, no antialias)."""
        ...

    def conv2d(self, x: Tensor, kernels: np.ndarray, padding: str = "same") -> Tensor:
        """Convolve NHWC ``x`` with ``(kh, kw, c_in, c_out)`` kernels (cross-correlation)."""
        ...

    # --- autodiff ------------------------------------------------------------------------------
    def value_and_grad(
        self, fn: Callable[[Tensor], Any], x: Tensor, has_aux: bool = False
    ) -> tuple[Any, Tensor]:
        """Evaluate ``fn(x)`` and the gradient of its scalar value (first item if ``has_aux``)."""
        ...

    def no_grad(self) -> AbstractContextManager: ...

    def jit(self, fn: Callable, model: Any = None) -> Callable:
        """``fn`` (tensors in, tensors out) made fast to call repeatedly with same-shaped inputs, for
        ``model``'s render steps: TensorFlow traces it into a graph; torch captures it in a CUDA graph
        on a GPU (see ``LoadedModel.graphs``) and returns it as it is elsewhere."""
        ...

    def eager(self) -> bool:
        """False while :meth:`jit` traces a function (constants made then must not be cached)."""
        ...


class ModelRunner(Protocol):
    """The model half: running a loaded model, capturing and replacing layers, the gradients CAMs
    need, swapped ReLU gradients, and what a model exposes (layers, kernels, biases, a digest).
    Per-model state (folded chains, traced functions) lives in ``LoadedModel.runtime``."""

    precision: str  # what the network computes in: dtype, or "bfloat16" (torch autocast; dtype stays float32)

    def forward(self, model: Any, x: Tensor, capture: Sequence[str] = (), logits: bool = True,
                normalized: bool = False, replace: dict[str, Tensor] | None = None,
                channels: Sequence[int] | None = None) -> ForwardResult:  # fmt: skip
        """Run ``model`` (a LoadedModel) on NHWC RGB ``x`` in [0, 1].

        Captures the named layers' outputs (channels-last). With ``logits=False`` the backend may
        stop as soon as every captured layer has run, which is how renders skip the model's tail.
        ``normalized``: ``x`` is already the model's normalized input. ``replace``: ``{layer: NHWC
        tensor}`` outputs substituted for those layers' own. ``channels``: with one captured layer
        and no logits, the one channel of it that each image's caller reads; the backend may then
        compute only those, and return the capture as ``(N, H, W, 1)``, image ``i``'s channel
        ``channels[i]`` (the same maths with fewer output channels). Captures and logits come back
        in :attr:`dtype` whatever :attr:`precision` the network ran in.
        """
        ...

    def tail(self, model: Any, layer: str) -> Callable[[Tensor], Tensor] | None:
        """A function from ``layer``'s NHWC output to the logits that runs only what follows the
        layer, verified once against the full model in full precision; None where there is none."""
        ...

    def activations_and_gradients(
        self, model: Any, x: Tensor, layers: Sequence[str], score_fn: Callable[[Tensor], Tensor]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
        """Activations of ``layers``, the gradients of ``sum(score_fn(logits))`` w.r.t. them, and the scores."""
        ...

    def input_and_layer_gradients(
        self, model: Any, x: Tensor, layers: Sequence[str], score_fn: Callable[[Tensor], Tensor],
        normalized: bool = False,
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:  # fmt: skip
        """Gradients of ``sum(score_fn(logits))`` w.r.t. the NHWC input ``x`` and the outputs of
        ``layers`` (names from :meth:`iter_layers` or :meth:`bias_sites`), and the scores.
        ``normalized``: ``x`` is already the model's normalized input, and its gradient is w.r.t. that."""
        ...

    def bias_sites(self, model: Any) -> list[tuple[str, np.ndarray]]:
        """Every spatial bias as ``(hook name, per-channel bias (C,))`` for FullGrad.

        The bias of a conv layer, and the effective bias ``beta - mean * gamma / sqrt(var + eps)``
        of an inference-mode batch norm. The hook name's output must be the tensor the bias was just
        added to (before any fused activation), so that its gradient is ∂L/∂(layer output).
        """
        ...

    def redirected_relu(self, model: Any) -> AbstractContextManager:
        """Within the context, ReLU(6) gradients are redirected (Lucid) so dead units still learn."""
        ...

    def guided_relu(self, model: Any) -> AbstractContextManager:
        """Within the context, ReLU(6) layers backpropagate guided gradients: only positive
        gradients, and only where the layer's input was in its active range."""
        ...

    def linearized(self, model: Any) -> AbstractContextManager:
        """Within the context, the network's activations pass their input unchanged and max pooling
        averages, so that every path between two layers is affine (the expanded weights of
        :mod:`featgen.analysis`). Batch norms are in inference mode, so already affine."""
        ...

    def iter_layers(self, model: Any) -> Iterator[tuple[str, Any]]:
        """``(name, native_layer)`` for every hookable layer, in execution-definition order."""
        ...

    def layer_type(self, layer: Any) -> str: ...

    def linear_output(self, model: Any, layer: str) -> str:
        """What :meth:`forward` captures for ``layer``'s output before its activation: where the layer
        is a ReLU after a convolution, or a convolution with a fused activation, a name whose capture
        is not cut at 0; else ``layer`` itself."""
        ...

    def layer_geometry(self, layer: Any) -> SpatialOp | None:
        """How ``layer`` (a native layer of :meth:`iter_layers`) maps input pixels to output pixels, if
        it is a convolution or a pooling with a kernel; None for anything that keeps positions
        (activations, normalizations, sums, 1x1 convolutions count as kernel 1)."""
        ...

    def layer_kernels(self, model: Any, name: str) -> np.ndarray | None:
        """The layer's conv kernels as ``(kh, kw, c_in, c_out)`` NumPy, or None if it has none."""
        ...

    def cast_module(self, module: Any) -> Any:
        """The native model with its weights in this backend's :attr:`dtype` (the same object if they are)."""
        ...

    def weights_digest(self, model: Any) -> str:
        """A short, stable digest of the model's parameters (for render caches)."""
        ...

    def memory_free(self) -> int | None:
        """Bytes the device can still give this process's tensors (a GPU's free memory, plus what the
        framework's allocator holds unused), or None where it cannot say (a CPU)."""
        ...

    def numerics(self) -> dict[str, Any]:
        """What float rounding depends on besides the inputs: the framework and its version, the
        device and, on a CPU, the intra-op thread count and the instruction set its kernels use."""
        ...


@dataclass(frozen=True)
class SpatialOp:
    """A layer's geometry: kernel, stride and dilation as ``(rows, cols)``; ``padding`` the rows and
    columns added before the first one, or ``"same"`` (TensorFlow's rule: worked out from the input size)."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    padding: tuple[int, int] | str = (0, 0)


@runtime_checkable
class Backend(TensorOps, ModelRunner, Protocol):
    """Framework primitives: :class:`TensorOps` and :class:`ModelRunner`. One instance per
    (framework, device, precision), shared by every model loaded with it."""
