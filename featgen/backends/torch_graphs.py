"""A render step captured in a CUDA graph and replayed: one launch per step instead of hundreds.

A render step (the image from its parameters, the warp, the network, the objective and the gradient
back to the parameters) is a few hundred small kernels; on EfficientNet-Lite0 a GPU mostly waits
for the CPU to launch them. Shapes are static within a render, so after a few eager steps the step
is captured once (``torch.cuda.graph``) and replayed: its inputs are copied into the tensors the
graph reads, and its outputs copied out of the tensors it writes. The optimizer's update stays eager.

The capture is a pure optimization: a step that cannot be captured (an operation CUDA graphs do not
allow) runs eagerly from then on, after one warning. Steps run while ReLU gradients are swapped
(Lucid's redirected ReLU, the first steps of a regularized render) are never captured.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch

WARMUP = 3  # eager steps before the capture: cuDNN and cuBLAS pick their kernels, lazy constants are made


class CudaGraphs:
    """How a step is warmed up, captured and replayed on a CUDA device (the real thing)."""

    def warm(self, fn: Callable, args: Sequence[torch.Tensor]) -> Any:
        """``fn(*args)`` on a side stream, as CUDA graphs ask of the calls before a capture."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            out = fn(*args)
        torch.cuda.current_stream().wait_stream(side)
        return out

    def capture(self, fn: Callable, args: Sequence[torch.Tensor]) -> tuple[Callable[[], None], Any]:
        """``(replay, outputs)``: ``fn`` on ``args`` recorded once (nothing runs), ``replay()`` runs it
        again on what ``args`` then hold, writing ``outputs``."""
        torch.cuda.empty_cache()  # the eager steps' freed blocks go back, for the graph's own pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = fn(*args)
        return graph.replay, out


class GraphedStep:
    """``fn`` (tensors in, a tuple of tensors out), warmed up for :data:`WARMUP` calls, then captured
    and replayed. ``eager()`` says when a call must run as it is (ReLU gradients swapped)."""

    def __init__(self, fn: Callable, eager: Callable[[], bool], graphs: Any = None):
        self.fn, self.eager, self.graphs = fn, eager, graphs or CudaGraphs()
        self.calls = 0
        self.failed = False
        self._replay: Callable[[], None] | None = None
        self._inputs: list[torch.Tensor] = []
        self._outputs: tuple = ()

    def __call__(self, *args: torch.Tensor) -> tuple:
        if self.failed or self.eager():
            return self.fn(*args)
        self.calls += 1
        if self.calls <= WARMUP:
            return self.graphs.warm(self.fn, args)
        if self._replay is None:
            self._inputs = [a.detach().clone() for a in args]
            try:
                self._replay, self._outputs = self.graphs.capture(self.fn, self._inputs)
            except Exception as exc:  # noqa: BLE001 (any capture failure: the step runs eagerly instead)
                self.failed = True
                warnings.warn(f"a render step could not be captured in a CUDA graph ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''}); it runs eagerly.",
                              RuntimeWarning, stacklevel=2)  # fmt: skip
                return self.fn(*args)
        for static, a in zip(self._inputs, args):
            if static.data_ptr() != a.data_ptr():
                static.copy_(a)
        self._replay()
        return tuple(o.clone() for o in self._outputs)  # the next replay writes over the graph's outputs
