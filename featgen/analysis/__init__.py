"""What the weights say about the network, without images or optimization: the expanded weights
between layers (:mod:`.links`) and how each unit of a classifier's last layers moves its logits."""

from .links import Expanded, class_weights, expanded_weights, top_links

__all__ = ["Expanded", "expanded_weights", "class_weights", "top_links"]
