"""The network on a batch of *views* of one image: view 0 the image, views 1.. its mirror (flip test,
docs/inference.md#flip-test).

The mirrored views' feature maps are flipped back at the feature level, so every view is aligned with the
image. This is written once, here: every runner of :mod:`boir_core.engine.inference.backends` and the exported ONNX
graph (:mod:`boir_core.engine.inference.export`) call :func:`dense_views`; the instance head over the views is
:func:`boir_core.model.fast_instance.views_heatmaps` (or the network's own ``instance_heatmaps``).
"""
from __future__ import annotations

import torch
import torch.nn as nn

__all__ = ["flip_back", "dense_views"]


def flip_back(features: torch.Tensor) -> torch.Tensor:
    """[V, C, H, W] features of the views → the same with views 1.. mirrored back along the width (view 0, the
    image, as it is; with V = 1 nothing moves)."""
    return torch.cat([features[:1], torch.flip(features[1:], dims=[3])], dim=0)


def dense_views(model: nn.Module, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` [V, 3, H', W'] (view 0 the image, views 1.. mirrored) → (aligned features [V, C_b, H, W],
    center logits [V, 1, H, W]): the backbone, the flip back, then the center head on the aligned maps."""
    features = flip_back(model.features(images))
    return features, model.center_logits(features)
