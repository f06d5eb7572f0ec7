"""Which layers of two backends' versions of the same model compute the same thing."""

from __future__ import annotations

from ..errors import FeatgenError
from .base import LoadedModel


def _counterpart(row_name: str, a: LoadedModel, b: LoadedModel, b_names: set[str]) -> str | None:
    if row_name in b_names:
        return row_name
    if b.layer_aliases.get(row_name) in b_names:  # b knows a's name as an alias
        return b.layer_aliases[row_name]
    return next((k for k, v in a.layer_aliases.items() if v == row_name and k in b_names), None)


def equivalent_layers(model_a: LoadedModel, model_b: LoadedModel) -> list[tuple[str, str]]:
    """The ``(name_in_a, name_in_b)`` pairs of layers with the same output, in ``model_a``'s order.

    For the built-in models in two backends: ``efficientnet_lite0`` shares timm's names (a torch
    ``X.act`` pairs with Keras' ``X``), ``vgg16_hed`` pairs torch's ``features.N`` ReLUs with
    Keras' ``blockB_convI``. Layers without a counterpart (torch's pre-ReLU VGG convs, Keras'
    pre-activation ``X.norm``) are left out; pairs must also agree on their output shape.
    """
    if model_a.name != model_b.name:
        raise FeatgenError(f"equivalent_layers compares one model in two backends, got {model_a.name} and {model_b.name}.")
    b_names = set(model_b.layer_names)
    shapes_b = {row.name: row.shape for row in model_b.layer_table}
    pairs = []
    for row in model_a.layer_table:
        other = _counterpart(row.name, model_a, model_b, b_names)
        if other is not None and shapes_b.get(other) == row.shape:
            pairs.append((row.name, other))
    return pairs
