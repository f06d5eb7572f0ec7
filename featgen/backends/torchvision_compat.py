"""The one place featgen imports torchvision (and so timm, grad-cam, lucent), with the CPU-torch fix.

PyPI's torchvision 0.28 is a CUDA build. Beside a CPU build of torch its C++ extension cannot load,
its ``torchvision::nms`` operator is never defined, and ``import torchvision`` fails with
"operator torchvision::nms does not exist" while registering a fake kernel for it. We first try to
load the extension properly; if that fails we define stub *schemas* for the two operators that
torchvision's import registers kernels for. Only NMS becomes unusable; models and transforms work.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

_STUB_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_stub_library = None  # kept alive: dropping the Library object would unregister the schemas
stubbed = False  # True when the stub path was taken


def _extension_path() -> Path | None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return None
    found = sorted(Path(spec.origin).parent.glob("_C*.so")) + sorted(Path(spec.origin).parent.glob("_C*.pyd"))
    return found[0] if found else None


def _has_op(name: str) -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw(f"torchvision::{name}", "")
        return True
    except RuntimeError:
        return False


def ensure_torchvision_ops() -> None:
    """Make ``import torchvision`` work: load its extension, or stub the operator schemas."""
    global _stub_library, stubbed
    import torch

    if all(_has_op(op) for op in _STUB_OPS):
        return
    path = _extension_path()
    if path is not None:
        try:
            torch.ops.load_library(str(path))
        except (OSError, RuntimeError):
            pass
    missing = [op for op in _STUB_OPS if not _has_op(op)]
    if missing:
        _stub_library = torch.library.Library("torchvision", "FRAGMENT")
        for op in missing:
            _stub_library.define(_STUB_OPS[op])
        stubbed = True


def import_torchvision() -> ModuleType:
    """``import torchvision`` through the CPU-torch fix; call this before importing timm or grad-cam."""
    ensure_torchvision_ops()
    return importlib.import_module("torchvision")
