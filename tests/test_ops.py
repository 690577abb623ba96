"""Shared tensor operations."""


def test_sigmoid_clamp_precision_and_range():
    import torch

    from boir_core.ops import CLAMP_EPS, sigmoid_clamp

    x = torch.tensor([-50.0, 0.0, 50.0])
    assert sigmoid_clamp(x.half()).dtype == torch.float32  # autocast outputs are lifted to fp32
    assert sigmoid_clamp(x.bfloat16()).dtype == torch.float32
    assert sigmoid_clamp(x.double()).dtype == torch.float64  # gradchecks stay in float64
    assert torch.allclose(sigmoid_clamp(x), torch.tensor([CLAMP_EPS, 0.5, 1 - CLAMP_EPS]))
