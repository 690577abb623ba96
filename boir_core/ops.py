"""Small tensor operations shared by the model, the losses and the decoder (no dependencies inside the kit)."""
from __future__ import annotations

import math

import torch

#: Focal-loss prior used by the release for output-conv biases: -ln((1 - 0.01) / 0.01).
PRIOR_BIAS = -math.log((1 - 0.01) / 0.01)

#: Probabilities are clamped to this range after the sigmoid (docs/model.md#task-heads,
#: docs/model.md#instance-keypoint-head).
CLAMP_EPS = 1e-4


def sigmoid_clamp(logits: torch.Tensor) -> torch.Tensor:
    """Sigmoid clamped to [1e-4, 1 - 1e-4], as the release does for every heatmap.

    Computed in fp32 (half / bfloat16 logits from autocast are cast up); float64 stays float64, so the
    losses' gradchecks run through the same function.
    """
    x = logits if logits.dtype == torch.float64 else logits.float()
    return torch.sigmoid(x).clamp(CLAMP_EPS, 1 - CLAMP_EPS)
