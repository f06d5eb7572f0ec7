"""Class activation maps: the Grad-CAM family, written once on the backend primitives.

``featgen.cam`` is both this package and the function :func:`featgen.cam.api.cam`: importing the
package makes it an attribute of ``featgen``, so the module itself is made callable.
"""

import sys
import types

from .api import METHODS, cam, check_method, default_layer, guided_backprop, guided_gradcam, resolve_targets

__all__ = ["cam", "METHODS", "check_method", "default_layer", "guided_backprop", "guided_gradcam", "resolve_targets"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return cam(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
