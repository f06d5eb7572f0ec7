"""The Backend protocol on PyTorch. One of the two modules that import a framework."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ..errors import FeatgenError
from .base import DEAD_ROW_PROBE, ForwardResult, InputNormalization, SpatialOp, bn_affine

_CONV_TYPES = (nn.Conv2d, nn.ConvTranspose2d)
_RELUS = (nn.ReLU, nn.ReLU6)  # the modules whose gradient redirected_relu and guided_relu swap
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.SiLU, nn.GELU, nn.Hardswish, nn.Mish)  # linearized(): identity
_SPARSE_REDIRECT = {"cpu"}  # devices where the redirected ReLU may index the dead images (no sync)


class _Stop(Exception):
    """Raised from a forward hook once every captured layer has run: skips the model's tail."""


def _to_nhwc(t: torch.Tensor) -> torch.Tensor:
    return t.permute(0, 2, 3, 1) if t.dim() == 4 else t


def _axis(axis: int | Sequence[int] | None) -> Any:
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


class _Clamp(torch.autograd.Function):
    """Forward: clamp(x, lo, hi). Subclasses say how the gradient passes back (``backward``)."""

    @staticmethod
    def forward(ctx, x, lo, hi):  # noqa: D102
        ctx.save_for_backward(x)
        ctx.lo, ctx.hi = lo, hi
        return x.clamp(lo, hi) if hi is not None else x.clamp_min(lo)


class _RedirectedClamp(_Clamp):
    """Backward (Lucid): if no gradient would pass for an image, let through the gradient that
    pushes blocked inputs back towards the active range.

    An image with no passing gradient has a zero gradient on every input inside (lo, hi), so its
    redirected gradient is ``min(grad, 0)`` below the range and ``max(grad, 0)`` above it, over
    the whole activation. The rule is the native clamp backward, a search for the images with no
    passing gradient, and the redirected gradient for those images only.

    This runs on every ReLU of every redirected step, and images with no passing gradient are rare.
    On a CUDA device the redirected gradient is computed for every image and masked, so that the
    backward never waits for the device (the search is one reduction over every entry); on the CPU
    the search probes each image's first entries (:func:`_dead_rows`) and the redirected gradient
    is computed for the dead images alone (a redirected step then costs about a plain one)."""

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        lo, hi = ctx.lo, ctx.hi
        if hi is None:
            passed = torch.ops.aten.threshold_backward(grad, x, lo)
        else:
            passed = torch.ops.aten.hardtanh_backward(grad, x, lo, hi)
        if passed.device.type not in _SPARSE_REDIRECT:
            low, high = torch.aminmax(_rows(passed), dim=1)
            dead = (low == 0) & (high == 0)  # a NaN row is not dead: the NaN passes on
            mask = dead.to(grad.dtype).view(-1, *([1] * (grad.dim() - 1)))
            return passed.addcmul_(mask, _pull(grad, x, lo, hi)), None, None
        rows = _dead_rows(_rows(passed))
        if rows.numel():  # passed is zero on these rows: adding is writing
            passed.index_add_(0, rows, _pull(grad.index_select(0, rows), x.index_select(0, rows), lo, hi))
        return passed, None, None


def _dead_rows(rows: torch.Tensor, probe: int = DEAD_ROW_PROBE) -> torch.Tensor:
    """Indices of the all-zero rows of a CPU ``(batch, n)`` tensor (a NaN is not zero).

    A row with a gradient almost always has a nonzero among its first entries, so those are read
    first and only the rows that pass that probe are read in full: on Lite0's widest ReLU6 input
    (16 × 96 × 71 × 71) this takes 0.1 ms, where one reduction over every entry takes 9 ms."""
    suspects = (~rows[:, :probe].any(dim=1)).nonzero().squeeze(1)
    if suspects.numel() == 0 or rows.shape[1] <= probe:
        return suspects
    return suspects[~rows.index_select(0, suspects).any(dim=1)]


def _rows(t: torch.Tensor) -> torch.Tensor:
    """``t`` as (batch, -1), a view in memory order (channels_last activations are not copied)."""
    if t.dim() == 4 and not t.is_contiguous() and t.is_contiguous(memory_format=torch.channels_last):
        t = t.permute(0, 2, 3, 1)
    return t.reshape(t.shape[0], -1)


def _pull(grad: torch.Tensor, x: torch.Tensor, lo: float, hi: float | None) -> torch.Tensor:
    """The descent direction that moves blocked inputs back into (lo, hi): ``min(grad, 0)`` below
    the range, ``max(grad, 0)`` above it."""
    if hi is None:
        return grad.clamp(max=0.0)
    return torch.where(x < (lo + hi) / 2.0, grad.clamp(max=0.0), grad.clamp(min=0.0))


class _GuidedClamp(_Clamp):
    """Backward (guided backpropagation, Springenberg et al. 2015): only positive gradients pass,
    and only where the input was in the active range (lo, hi)."""

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        (x,) = ctx.saved_tensors
        keep = (x > ctx.lo) & (grad > 0)
        if ctx.hi is not None:
            keep = keep & (x < ctx.hi)
        return grad * keep.to(grad.dtype), None, None


def _conv_bn_pairs(parent: nn.Module) -> list[tuple[str, str]]:
    """Names of the ``(conv, bn)`` children of ``parent`` where an eval-mode BatchNorm is registered
    right after a convolution of as many channels."""
    kids = list(parent.named_children())
    return [(a, b) for (a, conv), (b, bn) in zip(kids, kids[1:])
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_var is not None and bn.num_features == conv.out_channels]  # fmt: skip


def _is_same_pad_conv(m: nn.Module) -> bool:
    """timm's ``Conv2dSame``: TensorFlow's "SAME" padding, worked out from each input's size."""
    return isinstance(m, nn.Conv2d) and type(m).__name__ == "Conv2dSame"


class _SamePadConv(nn.Module):
    """A ``Conv2dSame`` that skips the padded copy when the padding comes out symmetric.

    timm pads the input (a copy) and then convolves it; with an equal pad on both sides the
    convolution pads by itself. On EfficientNet-Lite0 at a 142-px input, the stride-2 depthwise
    convolution of ``blocks.1`` pads 71 → 73 on 96 channels, and the copy and its backward cost as
    much as the convolution."""

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        self.conv = conv

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        c = self.conv
        pads = []
        for n, k, s, d in zip(x.shape[-2:], c.kernel_size, c.stride, c.dilation):
            total = max((-(-n // s) - 1) * s + (k - 1) * d + 1 - n, 0)
            pads.append((total // 2, total - total // 2))
        (top, bottom), (left, right) = pads
        if top == bottom and left == right:
            return F.conv2d(x, c.weight, c.bias, c.stride, (top, left), c.dilation, c.groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), c.weight, c.bias, c.stride, 0, c.dilation, c.groups)


# modules that act on each element alone: on one channel they give what they give on all
_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.Identity, nn.Dropout, nn.SiLU, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                nn.Tanh, nn.GELU, nn.LeakyReLU, nn.ELU)  # fmt: skip
GROUPED_ABOVE = 128  # distinct channels in a batch above which the picked convolution runs grouped


def _elementwise(m: nn.Module) -> bool:
    if isinstance(m, nn.Sequential):
        return all(_elementwise(c) for c in m)
    return type(m) in _ELEMENTWISE


class _PickedHead(nn.Module):
    """A head (the chain up to a layer) that ends in a convolution and elementwise modules (its ReLU),
    computing for each image only the output channel its objective reads: the same sums with fewer
    output channels. Images of a batch read different channels, so the convolution runs either over
    the batch's distinct channels (``uniq``; each image then keeps its own, ``inverse``), or, with many
    distinct channels, as a grouped convolution with one group per image (``picks``), whose cost
    does not grow with them. On VGG16 ``block4_conv3`` the last convolution is 12.6 % of the chain's
    multiply-adds; the grouped form computes 1/512 of it."""

    def __init__(self, prefix: nn.Module, conv: nn.Conv2d, post: Sequence[nn.Module]):
        super().__init__()
        self.prefix, self.conv, self.post = prefix, conv, nn.ModuleList(post)

    @staticmethod
    def of(head: nn.Module) -> _PickedHead | None:
        """The head as a picked head, or None where it does not end so."""
        mods = list(head.children()) if isinstance(head, nn.Sequential) else [head]
        end = len(mods)
        while end and _elementwise(mods[end - 1]):
            end -= 1
        conv = mods[end - 1] if end else None
        if type(conv) is not nn.Conv2d or conv.groups != 1 or conv.padding_mode != "zeros":
            return None
        return _PickedHead(nn.Sequential(*mods[: end - 1]), conv, mods[end:])

    def forward(self, x: torch.Tensor, picks: torch.Tensor, uniq: torch.Tensor | None,
                inverse: torch.Tensor | None) -> torch.Tensor:  # noqa: D102
        x = self.prefix(x)
        c = self.conv
        bias = None if c.bias is None else c.bias.index_select(0, picks if uniq is None else uniq)
        if uniq is None:  # one group per image: (1, N·C, H, W) against N kernels of one output each
            n = x.shape[0]
            w = c.weight.index_select(0, picks)
            y = F.conv2d(x.contiguous().reshape(1, n * x.shape[1], *x.shape[2:]), w, bias, c.stride, c.padding,
                         c.dilation, groups=n)  # fmt: skip
            y = y.reshape(n, 1, *y.shape[2:])
        else:
            y = F.conv2d(x, c.weight.index_select(0, uniq), bias, c.stride, c.padding, c.dilation)
            y = y.gather(1, inverse.view(-1, 1, 1, 1).expand(-1, 1, *y.shape[2:]))
        for m in self.post:
            y = m(y)
        return y


def _fold_batchnorms(head: nn.Module) -> nn.Module:
    """A copy of ``head`` with every eval-mode BatchNorm folded into the convolution registered
    just before it in the same parent (``conv → bn`` as timm's blocks and most CNNs declare them),
    and timm's ``Conv2dSame`` run as :class:`_SamePadConv`; or ``head`` itself when there is
    neither. The caller checks the copy against the model.

    A folded BatchNorm costs nothing: the convolution's weights and bias absorb its affine map,
    so a render step saves the norm's forward and backward passes over every activation (on
    EfficientNet-Lite0, a quarter of a CPU step). timm's ``BatchNormAct2d`` keeps its ``drop`` and
    ``act``; ReLU modules are shared with the model, not copied, so swapping ReLU gradients
    (``redirected_relu``, ``guided_relu``) reaches them."""
    if not any(_conv_bn_pairs(parent) or _is_same_pad_conv(parent) for parent in head.modules()):
        return head
    folded = copy.deepcopy(head, {id(m): m for m in head.modules() if isinstance(m, _RELUS)})
    for parent in folded.modules():
        for a, b in _conv_bn_pairs(parent):
            bn = getattr(parent, b)
            setattr(parent, a, fuse_conv_bn_eval(getattr(parent, a), bn))
            rest = [m for m in (getattr(bn, "drop", None), getattr(bn, "act", None)) if isinstance(m, nn.Module)]
            setattr(parent, b, nn.Sequential(*rest) if rest else nn.Identity())
    for parent in list(folded.modules()):
        for name, child in list(parent.named_children()):
            if _is_same_pad_conv(child):
                setattr(parent, name, _SamePadConv(child))
    return folded


def _reflect(coord: torch.Tensor, size: int) -> torch.Tensor:
    """grid_sample's reflection (align_corners=False): mirror about -0.5 and size - 0.5."""
    c = (coord + 0.5).abs()
    flips = torch.floor(c / size)
    extra = c - flips * size
    return torch.where(flips.remainder(2) == 0, extra - 0.5, size - extra - 0.5)


def _sample_rows(x: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    """``F.grid_sample`` (bilinear, align_corners=False) on NHWC ``x`` as four row gathers.

    Each output pixel is a weighted sum of four input pixels picked with ``index_select`` on the
    ``(N·H·W, C)`` view, whose backward (``index_add_``) has a deterministic CUDA implementation;
    grid_sample's backward does not. Used when deterministic algorithms are on."""
    n, h, w, c = x.shape
    ho, wo = grid.shape[1:3]
    ix = ((grid[..., 0] + 1) * w - 1) / 2
    iy = ((grid[..., 1] + 1) * h - 1) / 2
    if padding == "reflection":
        ix, iy = _reflect(ix, w), _reflect(iy, h)
    if padding != "zeros":
        ix, iy = ix.clamp(0, w - 1), iy.clamp(0, h - 1)
    x0, y0 = ix.floor(), iy.floor()
    fx, fy = ix - x0, iy - y0
    rows = x.reshape(n * h * w, c)
    base = (torch.arange(n, device=x.device) * (h * w)).view(n, 1, 1)
    out = x.new_zeros(n, ho, wo, c)
    for yy, wy in ((y0, 1 - fy), (y0 + 1, fy)):
        for xx, wx in ((x0, 1 - fx), (x0 + 1, fx)):
            inside = (xx >= 0) & (xx <= w - 1) & (yy >= 0) & (yy <= h - 1)
            idx = base + (yy.clamp(0, h - 1) * w + xx.clamp(0, w - 1)).long()
            weight = (wx * wy * inside).unsqueeze(-1)
            out = out + rows.index_select(0, idx.reshape(-1)).reshape(n, ho, wo, c) * weight
    return out


class TorchBackend(InputNormalization):
    """Backend primitives on PyTorch."""

    name = "torch"

    def __init__(self, device: str | None = None, dtype: str = "float32"):
        if device in (None, "auto"):
            device = default_device()
        if dtype == "auto":
            dtype = default_precision(device)
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise FeatgenError(f"device {device!r} was asked for, but torch sees no CUDA GPU; use --device cpu.")
        self.device = device
        # "bfloat16": the network runs under autocast; parameters, optimizer state and every
        # tensor this backend makes stay float32
        self.precision = dtype
        self.dtype = "float32" if dtype == "bfloat16" else dtype
        self.torch = torch
        self._exact = False  # True while a check must run in full precision
        # forward(channels=...) computes only those channels of a closing convolution; the grouped form
        # above this many distinct channels (attributes, so a benchmark can time the alternatives)
        self.pick_channels, self.grouped_above = True, GROUPED_ABOVE
        self._relu_swapped = 0  # > 0 while ReLU forwards are swapped (compiled code would not see it)

    def _autocast(self):
        if self.precision != "bfloat16" or self._exact:
            return contextlib.nullcontext()
        # no cast cache: each weight is cast once per forward anyway, and a cast kept across a CUDA
        # graph's capture would hold memory the graph does not own
        return torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16, cache_enabled=False)

    @contextlib.contextmanager
    def _full_precision(self):
        previous, self._exact = self._exact, True
        try:
            yield
        finally:
            self._exact = previous

    # --- tensors -----------------------------------------------------------------------------
    def asarray(self, a, dtype: str | None = None):
        t = getattr(torch, dtype or self.dtype)
        if isinstance(a, torch.Tensor):
            return a.to(device=self.device, dtype=t)
        return torch.as_tensor(np.asarray(a), dtype=t, device=self.device)

    def to_numpy(self, t) -> np.ndarray:
        return t.detach().float().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)

    def shape(self, t) -> tuple[int, ...]:
        return tuple(t.shape)

    def native_input(self, batch: np.ndarray):
        """NHWC NumPy → NCHW tensor (channels_last memory) on the device."""
        return self.asarray(batch).permute(0, 3, 1, 2)

    # --- math --------------------------------------------------------------------------------
    sigmoid = staticmethod(torch.sigmoid)
    sqrt = staticmethod(torch.sqrt)
    abs = staticmethod(torch.abs)
    cos = staticmethod(torch.cos)
    sin = staticmethod(torch.sin)
    isfinite = staticmethod(torch.isfinite)

    def clip(self, x, lo, hi):
        return torch.clamp(x, lo, hi)

    def where(self, cond, a, b):
        return torch.where(cond, a, b)

    def sum(self, x, axis=None, keepdims=False):
        return x.sum() if axis is None else x.sum(dim=_axis(axis), keepdim=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return x.mean() if axis is None else x.mean(dim=_axis(axis), keepdim=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return x.amax() if axis is None else x.amax(dim=_axis(axis), keepdim=keepdims)

    def min(self, x, axis=None, keepdims=False):
        return x.amin() if axis is None else x.amin(dim=_axis(axis), keepdim=keepdims)

    def max_and_argmax(self, x, axis):
        values, indices = x.max(dim=axis)
        return values, indices

    def reshape(self, x, shape):
        return x.reshape(tuple(shape))

    def transpose(self, x, perm):
        return x.permute(*perm)

    def concat(self, xs, axis=0):
        return torch.cat(list(xs), dim=axis)

    def stack(self, xs, axis=0):
        return torch.stack(list(xs), dim=axis)

    def einsum(self, eq, *xs):
        return torch.einsum(eq, *xs)

    # --- Fourier -----------------------------------------------------------------------------
    def irfft2(self, re, im, size):
        return torch.fft.irfft2(torch.complex(re, im), s=tuple(size))

    # --- images ------------------------------------------------------------------------------
    def warp(self, x, matrices, size, mode="reflect"):
        """See the protocol. ``matrices``: NumPy or a tensor; theta is computed on the device."""
        n, h_in, w_in, _ = x.shape
        h_out, w_out = size
        m = torch.as_tensor(matrices, dtype=x.dtype, device=x.device).reshape(-1, 2, 3)
        # pixel coords p = (u + 1) * W / 2 in normalized u (align_corners=False); solve for theta.
        out_half, in_inv = self._warp_constants(x, (w_in, h_in), (w_out, h_out))
        a, b = m[:, :, :2], m[:, :, 2]
        theta_a = a * in_inv[:, None] * out_half[None, :]
        theta_b = in_inv * ((a * out_half).sum(-1) + b) - 1.0
        theta = torch.cat([theta_a, theta_b[..., None]], dim=2).expand(n, 2, 3)
        grid = F.affine_grid(theta, [n, x.shape[3], h_out, w_out], align_corners=False)
        pad = {"reflect": "reflection", "zeros": "zeros", "border": "border"}[mode]
        if x.is_cuda and torch.are_deterministic_algorithms_enabled():
            return _sample_rows(x, grid, pad)  # grid_sample's CUDA backward adds atomically: bytes would vary
        out = F.grid_sample(x.permute(0, 3, 1, 2), grid, mode="bilinear", padding_mode=pad, align_corners=False)
        return out.permute(0, 2, 3, 1)

    def _warp_constants(self, x, size_in: tuple[int, int], size_out: tuple[int, int]):
        """``(out_half, in_inv)`` of :meth:`warp`, made once per sizes, dtype and device (a render step
        captured in a CUDA graph may not upload)."""
        key = (x.dtype, x.device, size_in, size_out)
        consts = self.__dict__.setdefault("_warp_consts", {})
        if key not in consts:
            (w_in, h_in), (w_out, h_out) = size_in, size_out
            consts[key] = (torch.tensor([w_out / 2.0, h_out / 2.0], dtype=x.dtype, device=x.device),
                           torch.tensor([2.0 / w_in, 2.0 / h_in], dtype=x.dtype, device=x.device))  # fmt: skip
        return consts[key]

    def resize(self, x, size):
        out = F.interpolate(x.permute(0, 3, 1, 2), size=tuple(size), mode="bilinear", align_corners=False)
        return out.permute(0, 2, 3, 1)

    def conv2d(self, x, kernels, padding="same"):
        w = torch.as_tensor(np.asarray(kernels), dtype=x.dtype, device=x.device).permute(3, 2, 0, 1)
        x = x.permute(0, 3, 1, 2)
        if padding == "same":  # TF's rule: the odd extra pixel goes bottom/right
            kh, kw = w.shape[2:]
            x = F.pad(x, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2))
        out = F.conv2d(x, w)
        return out.permute(0, 2, 3, 1)

    # --- autodiff ----------------------------------------------------------------------------
    def value_and_grad(self, fn: Callable, x, has_aux: bool = False):
        x = x.detach().requires_grad_(True)
        with torch.enable_grad():
            out = fn(x)
            loss = out[0] if has_aux else out
            (grad,) = torch.autograd.grad(loss, x)
        return out, grad

    def no_grad(self):
        return torch.no_grad()

    def eager(self) -> bool:
        return True

    def jit(self, fn: Callable, model: Any = None) -> Callable:
        """``fn`` captured in a CUDA graph after a few eager calls and replayed (:mod:`.torch_graphs`)
        where :meth:`graphs` says so; else ``fn`` as it is (the network's forward is compiled
        separately, see ``LoadedModel.compile``)."""
        if model is None or not self.graphs(model):
            return fn
        from .torch_graphs import GraphedStep

        return GraphedStep(fn, eager=lambda: self._relu_swapped > 0)

    def graphs(self, model) -> bool:
        """Whether render steps of ``model`` are captured in CUDA graphs: ``model.graphs``; by default
        off (``FEATGEN_CUDA_GRAPHS=1`` turns it on where ``model.compile`` is not set) until a GPU run
        has measured that it pays and gives the eager bytes (``benchmarks/gpu_speed.sh`` checks both)."""
        if model.graphs is not None:
            return bool(model.graphs) and self.device.startswith("cuda")
        return self.device.startswith("cuda") and not model.compile and os.environ.get("FEATGEN_CUDA_GRAPHS") == "1"

    # --- models ------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _capture(self, model, names: Sequence[str], stop: bool, store: dict, replace: dict | None = None):
        # every named module, not only iter_layers': bias_sites may name a hidden Identity
        modules = dict(model.module.named_modules())
        pending = set(names)
        handles = []

        def make_hook(name):
            def hook(_module, _inputs, output):
                if replace and name in replace:
                    output = replace[name]
                store[name] = output
                pending.discard(name)
                if stop and not pending:
                    raise _Stop
                return output if replace and name in replace else None

            return hook

        try:
            for name in names:
                handles.append(modules[name].register_forward_hook(make_hook(name)))
            yield
        finally:
            for h in handles:
                h.remove()

    def forward(self, model, x, capture: Sequence[str] = (), logits: bool = True, normalized: bool = False,
                replace: dict | None = None, channels: Sequence[int] | None = None) -> ForwardResult:  # fmt: skip
        """See the protocol. ``normalized``: ``x`` is already the model's normalized input (NHWC).
        ``replace``: ``{layer: NHWC tensor}`` outputs substituted for those layers' own. ``channels``:
        where the modules up to the layer end in a convolution (and its ReLU), only those channels
        are computed (:class:`_PickedHead`). The network gets its input in ``channels_last`` memory,
        as its weights are (the warp leaves NCHW memory behind)."""
        store: dict[str, torch.Tensor] = {}
        stop = bool(capture) and not logits
        inp = (x if normalized else self._normalize(model, x)).permute(0, 3, 1, 2)
        inp = inp.contiguous(memory_format=torch.channels_last) if inp.dim() == 4 else inp
        if len(capture) == 1 and not logits and not replace and channels is not None and self.pick_channels:
            picked = self._head(model, capture[0], picked=True)
            if picked is not None:
                with self._autocast():
                    out = picked(inp, *self._picks(model, channels))
                return ForwardResult({capture[0]: _to_nhwc(out).to(x.dtype)}, None)
        if len(capture) == 1 and not logits and not replace:
            head = self._head(model, capture[0])
            if head is not None:  # the modules up to the layer, called in order: no hooks
                with self._autocast():
                    out = head(inp)
                return ForwardResult({capture[0]: _to_nhwc(out).to(x.dtype)}, None)
        swap = {k: (v.permute(0, 3, 1, 2) if v.dim() == 4 else v) for k, v in (replace or {}).items()}
        names = list(dict.fromkeys(list(capture) + list(swap)))
        out = None
        with self._capture(model, names, stop, store, replace=swap), self._autocast():
            try:
                out = model.module(inp)
            except _Stop:
                pass
        acts = {name: _to_nhwc(store[name]).to(x.dtype) for name in capture if name in store}
        return ForwardResult(acts, out.to(x.dtype) if logits and out is not None else None)

    def _head(self, model, layer: str, picked: bool = False) -> Callable | None:
        """The modules that run up to and including ``layer``, as one callable on the NCHW input,
        when they form a chain (as in timm's EfficientNets and VGG stacks); checked once against
        the hooked forward pass, else None. ``picked``: the chain as a :class:`_PickedHead`, or None
        where it does not end in a convolution. With ``model.compile`` (default: on CUDA only when
        asked) the chain runs through ``torch.compile``, except while ReLU gradients are swapped."""
        heads = model.runtime.setdefault("torch_heads", {})
        if layer not in heads:
            heads[layer] = self._build_head(model, layer)
        key = (layer, picked)
        chains = model.runtime.setdefault("torch_chains", {})
        if key not in chains:
            chains[key] = _PickedHead.of(heads[layer]) if picked and heads[layer] is not None else heads[layer]
        chain = chains[key]
        if chain is None:
            return None
        if model.compile and not self._relu_swapped:
            compiled = model.runtime.setdefault("torch_compiled", {})
            if key not in compiled:
                compiled[key] = torch.compile(chain, dynamic=False)
            return compiled[key]
        return chain

    def _picks(self, model, channels: Sequence[int]) -> tuple:
        """``(picks, uniq, inverse)`` for :class:`_PickedHead`, as device tensors made once per set of
        channels (a CUDA graph replays the addresses it was captured with): the grouped form
        (``uniq`` None) when the batch reads more than :data:`GROUPED_ABOVE` distinct channels."""
        made = model.runtime.setdefault("torch_picks", {})
        key = tuple(int(c) for c in channels)
        if key not in made:
            uniq, inverse = np.unique(np.asarray(key, np.int64), return_inverse=True)
            long = (lambda a: torch.as_tensor(a, dtype=torch.long, device=self.device))  # noqa: E731
            grouped = len(uniq) > self.grouped_above
            made[key] = (long(key), None, None) if grouped else (long(key), long(uniq), long(inverse.ravel()))
            while len(made) > 8:  # a few batches' worth: each render makes its own
                made.pop(next(iter(made)))
        return made[key]

    def _build_head(self, model, layer: str) -> nn.Module | None:
        parts = layer.split(".")
        node, parents = model.module, []
        for part in parts:
            parents.append(node)
            node = node[int(part)] if part.isdigit() else getattr(node, part, None)
            if node is None:
                return None
        chain: list[nn.Module] = []
        for depth, parent in enumerate(parents):
            if depth > 0 and not isinstance(parent, nn.Sequential):
                return None  # inside a block whose forward is not a plain chain (e.g. residuals)
            names = [n for n, _ in parent.named_children()]
            chain.extend(m for _, m in list(parent.named_children())[: names.index(parts[depth])])
        head = nn.Sequential(*chain, node)
        x = self.asarray(torch.rand(1, model.input_size, model.input_size, 3, generator=torch.Generator().manual_seed(0)))
        with torch.no_grad(), self._full_precision():
            inp = self._normalize(model, x).permute(0, 3, 1, 2)
            store: dict = {}
            with self._capture(model, [layer], True, store):
                try:
                    model.module(inp)
                except _Stop:
                    pass
            try:
                got = head(inp)
            except Exception:  # a module that needs more than the previous output: not a chain
                return None
        want = store.get(layer)
        if want is None or got.shape != want.shape or not torch.allclose(got, want, atol=1e-5, rtol=1e-5):
            return None
        folded = _fold_batchnorms(head)
        if folded is not head:
            with torch.no_grad(), self._full_precision():
                got = folded(inp)
            scale = want.abs().amax().clamp_min(1e-12)  # folding rounds differently: compare at the layer's scale
            if torch.allclose(got / scale, want / scale, rtol=1e-4, atol=1e-4):
                return folded.to(memory_format=torch.channels_last)
        return head

    def tail(self, model, layer: str) -> Callable | None:
        """A function from ``layer``'s NHWC output to the logits that runs only what follows the layer.

        Works when the modules after ``layer`` form a chain of ``nn.Sequential`` children, as in
        timm's EfficientNets and VGG stacks; checked once against the full model, else ``None``.
        """
        cache = model.runtime.setdefault("torch_tails", {})
        if layer not in cache:
            cache[layer] = self._build_tail(model, layer)
        return cache[layer]

    def _build_tail(self, model, layer: str):
        parts = layer.split(".")
        chain: list[nn.Module] = []
        node = model.module
        parents = []
        for part in parts:
            parents.append(node)
            node = getattr(node, part) if not part.isdigit() else node[int(part)]
        for depth in range(len(parts) - 1, -1, -1):
            parent = parents[depth]
            if depth > 0 and not isinstance(parent, nn.Sequential):
                return None  # inside a block whose forward is not a plain chain (e.g. residuals)
            names = [n for n, _ in parent.named_children()]
            idx = names.index(parts[depth])
            chain.extend(m for _, m in list(parent.named_children())[idx + 1 :])
        if hasattr(model.module, "forward_head"):  # timm: pooling, flatten, (dropout), classifier
            chain = [m for m in chain if m is not getattr(model.module, "global_pool", None)
                     and m is not getattr(model.module, "classifier", None)]  # fmt: skip

        def run(acts):
            y = acts.permute(0, 3, 1, 2) if acts.dim() == 4 else acts
            with self._autocast():
                for m in chain:
                    y = m(y)
                if hasattr(model.module, "forward_head"):
                    y = model.module.forward_head(y)
            return y.to(acts.dtype)

        # verify on a real forward pass, in full precision (a reduced-precision run would miss the
        # 1e-4 tolerance for rounding, not structure): the chain must reproduce the model's logits
        size = model.input_size
        x = self.asarray(torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(0)))
        with torch.no_grad(), self._full_precision():
            out = self.forward(model, x, capture=[layer], logits=True)
            try:
                got = run(out.activations[layer])
            except Exception:  # a module that needs more than the previous output: not a chain
                return None
        if got.shape != out.logits.shape or not torch.allclose(got, out.logits, atol=1e-4, rtol=1e-4):
            return None
        return run

    def _gradients(self, model, x, layers, score_fn, normalized: bool, wrt_input: bool):
        """One forward and one backward pass: the layers' outputs, the gradients of
        ``sum(score_fn(logits))`` w.r.t. them (and the input if ``wrt_input``), and the scores."""
        store: dict[str, torch.Tensor] = {}
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # the weights are frozen: the graph starts here
            inp = (x if normalized else self._normalize(model, x)).permute(0, 3, 1, 2)
            with self._capture(model, list(layers), False, store):
                logits = model.module(inp)
            scores = score_fn(logits)
            outs = [store[name] for name in layers]
            grads = torch.autograd.grad(scores.sum(), ([x] if wrt_input else []) + outs)
        grad_x = grads[0].detach() if wrt_input else None
        layer_grads = grads[1:] if wrt_input else grads
        return (
            {n: _to_nhwc(a.detach()) for n, a in zip(layers, outs)},
            grad_x,
            {n: _to_nhwc(g.detach()) for n, g in zip(layers, layer_grads)},
            scores.detach(),
        )

    def activations_and_gradients(self, model, x, layers, score_fn):
        acts, _, grads, scores = self._gradients(model, x, layers, score_fn, normalized=False, wrt_input=False)
        return acts, grads, scores

    def input_and_layer_gradients(self, model, x, layers, score_fn, normalized: bool = False):
        """See the protocol: one backward pass for the input's and the layers' gradients."""
        _, grad_x, grads, scores = self._gradients(model, x, layers, score_fn, normalized=normalized, wrt_input=True)
        return grad_x, grads, scores

    def bias_sites(self, model) -> list[tuple[str, np.ndarray]]:
        """Conv2d biases and BatchNorms' effective biases, each with the module to hook.

        A BatchNorm in eval mode is ``gamma * (x - mean) / sqrt(var + eps) + beta``: its bias is
        ``beta - mean * gamma / sqrt(var + eps)``. The gradient must be taken where that bias is
        added, i.e. before any activation. timm's ``BatchNormAct2d`` (a BatchNorm2d subclass) runs
        norm → ``drop`` → ``act`` in one forward, so its own output is post-activation; we hook its
        ``drop`` submodule (an Identity in eval), whose output is the pre-activation norm output.
        BatchNorms without running statistics (batch-dependent bias) and Linear layers (no spatial
        gradient, as in the FullGrad authors' code) are skipped.
        """
        sites = []
        for name, m in model.module.named_modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.bias is not None:
                sites.append((name, self.to_numpy(m.bias)))
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats and m.running_mean is not None:
                mean, var, gamma, beta = (None if t is None else self.to_numpy(t)
                                          for t in (m.running_mean, m.running_var, m.weight, m.bias))  # fmt: skip
                _, bias = bn_affine(mean, var, m.eps, gamma, beta)
                act = getattr(m, "act", None)
                if act is not None and not isinstance(act, nn.Identity):
                    drop = getattr(m, "drop", None)
                    if not isinstance(drop, nn.Module):
                        raise FeatgenError(f"{name} ({type(m).__name__}) applies its activation inside its forward "
                                           "with no hookable pre-activation point; FullGrad cannot use this model.")  # fmt: skip
                    name = f"{name}.drop"
                sites.append((name, bias.astype(np.float32)))
        return sites

    @contextlib.contextmanager
    def _swapped_forwards(self, model, forward_of: Callable[[nn.Module], Callable | None]):
        """Give every module for which ``forward_of`` returns a function that forward; restore on exit.
        Compiled and graphed chains are bypassed meanwhile (``_relu_swapped``)."""
        swapped = []
        self._relu_swapped += 1
        for module in model.module.modules():
            forward = forward_of(module)
            if forward is not None:
                module.forward = forward
                swapped.append(module)
        try:
            yield
        finally:
            self._relu_swapped -= 1
            for module in swapped:
                del module.forward  # drops the instance attribute: the class's forward is back

    def _clamp_relus(self, model, fn):
        """Swap every ReLU/ReLU6 forward for ``fn.apply(x, 0, hi)``."""

        def forward_of(module):
            if not isinstance(module, _RELUS):
                return None
            hi = 6.0 if isinstance(module, nn.ReLU6) else None
            return lambda x: fn.apply(x, 0.0, hi)

        return self._swapped_forwards(model, forward_of)

    def redirected_relu(self, model):
        return self._clamp_relus(model, _RedirectedClamp)

    def guided_relu(self, model):
        """ReLU/ReLU6 modules backpropagate guided gradients within the context (functional relus
        called inside other modules' forwards are not reached)."""
        return self._clamp_relus(model, _GuidedClamp)

    def linearized(self, model):
        """Within the context, activation modules pass their input and max pooling averages (an
        activation called inside another module's forward is not reached)."""

        def forward_of(module):
            if isinstance(module, _ACTIVATIONS):
                return lambda x: x
            if isinstance(module, nn.MaxPool2d):
                return lambda x: F.avg_pool2d(x, module.kernel_size, module.stride, module.padding, module.ceil_mode)
            return None

        return self._swapped_forwards(model, forward_of)

    def iter_layers(self, model) -> Iterator[tuple[str, Any]]:
        for name, module in model.module.named_modules():
            if name and not isinstance(module, (nn.Dropout, nn.Identity)):
                yield name, module

    def layer_type(self, layer) -> str:
        return type(layer).__name__

    def linear_output(self, model, layer: str) -> str:
        modules = dict(model.module.named_modules())
        if not isinstance(modules.get(layer), _RELUS):
            return layer
        parent_name, _, child = layer.rpartition(".")
        parent = modules[parent_name] if parent_name else model.module
        if not isinstance(parent, nn.Sequential):  # a ReLU called from a forward(): its input is not a module's output
            return layer
        names = list(parent._modules)
        i = names.index(child)
        if i == 0:
            return layer
        return f"{parent_name}.{names[i - 1]}" if parent_name else names[i - 1]

    def layer_geometry(self, layer) -> SpatialOp | None:
        pair = nn.modules.utils._pair
        if isinstance(layer, nn.Conv2d):
            padding = "same" if _is_same_pad_conv(layer) or layer.padding == "same" else pair(layer.padding)
            return SpatialOp(pair(layer.kernel_size), pair(layer.stride), pair(layer.dilation), padding)
        if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
            dilation = pair(getattr(layer, "dilation", 1))
            return SpatialOp(pair(layer.kernel_size), pair(layer.stride or layer.kernel_size), dilation, pair(layer.padding))
        return None

    def layer_kernels(self, model, name):
        layer = dict(self.iter_layers(model))[name]
        if not isinstance(layer, _CONV_TYPES):
            return None
        return layer.weight.detach().float().cpu().permute(2, 3, 1, 0).numpy()

    def cast_module(self, module: nn.Module) -> nn.Module:
        return module.to(getattr(torch, self.dtype))  # keeps channels_last

    def weights_digest(self, model) -> str:
        h = hashlib.sha256()
        for name, t in model.module.state_dict().items():
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def memory_free(self) -> int | None:
        if not self.device.startswith("cuda"):
            return None
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(free + torch.cuda.memory_reserved(self.device) - torch.cuda.memory_allocated(self.device))

    def numerics(self) -> dict[str, Any]:
        out: dict[str, Any] = {"framework": f"torch {torch.__version__}", "device": self.device}
        if self.device == "cpu":
            # ATen's vector kernels follow ATEN_CPU_CAPABILITY; oneDNN's convolutions ONEDNN_MAX_CPU_ISA
            isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").lower()
            out.update(threads=torch.get_num_threads(), isa=torch.backends.cpu.get_cpu_capability().lower()
                       + (f", onednn {isa}" if isa and isa != "all" else ""))  # fmt: skip
        return out

    # --- model preparation (used by the torch model sources) ---------------------------------
    def prepare_module(self, module: nn.Module) -> nn.Module:
        """Eval mode, frozen weights, no in-place activations (hooks must see unmodified outputs)."""
        for m in module.modules():
            if hasattr(m, "inplace") and isinstance(m.inplace, bool):
                m.inplace = False
        module.eval().requires_grad_(False)
        module.to(self.device, memory_format=torch.channels_last)
        return module


def default_device() -> str:
    """Where ``"auto"`` runs: the GPU if torch sees one."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_precision(device: str) -> str:
    """What ``precision="auto"`` computes in on ``device``: bfloat16 on a CUDA GPU with bf16 tensor
    cores (compute capability 8.0 and up: A100, H100, ...), else float32."""
    if not device.startswith("cuda") or not torch.cuda.is_available():
        return "float32"
    return "bfloat16" if torch.cuda.get_device_capability(device) >= (8, 0) else "float32"


def make_backend(device: str | None = None, dtype: str = "float32") -> TorchBackend:
    return TorchBackend(device, dtype)
