"""Step rules, written once on backend tensor arithmetic (so both frameworks share them)."""

from __future__ import annotations

from typing import Any


class Adam:
    """Adam (Kingma & Ba) with bias correction, on one tensor. ``step`` returns the new tensor."""

    def __init__(self, be, lr: float = 0.05, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.be, self.lr, self.b1, self.b2, self.eps = be, lr, beta1, beta2, eps
        self.m: Any = None
        self.v: Any = None
        self.t = 0

    def step(self, x, grad):
        self.t += 1
        if self.m is None:
            self.m, self.v = grad * 0.0, grad * 0.0
        self.m = self.m * self.b1 + grad * (1 - self.b1)
        self.v = self.v * self.b2 + grad * grad * (1 - self.b2)
        m_hat = self.m / (1 - self.b1**self.t)
        v_hat = self.v / (1 - self.b2**self.t)
        return x - m_hat * self.lr / (self.be.sqrt(v_hat) + self.eps)


class NormalizedAscent:
    """Plain steps along the gradient, L2-normalized per image (the Keras tutorial's naive ascent)."""

    def __init__(self, be, lr: float = 10.0):
        self.be, self.lr = be, lr

    def step(self, x, grad):
        axes = tuple(range(1, len(self.be.shape(grad))))
        norm = self.be.sqrt(self.be.sum(grad * grad, axis=axes, keepdims=True)) + 1e-12
        return x - grad / norm * self.lr


OPTIMIZERS = {"adam": Adam, "ascent": NormalizedAscent}
