"""term_gradients: what each Bbox Mask term sends to the embedding map (notebook 03, section 8b)."""
import torch


def test_term_gradients_d1_is_exactly_zero_and_level1_has_no_pull():
    """With D = 1 the normalised embedding is ±1, so no term sends gradient; BG level 1 has no pull term."""
    from boir_core.losses import BboxMaskSettings, term_gradients

    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[2.0, 3.0, 8.0, 10.0], [6.0, 5.0, 7.0, 9.0]], dtype=torch.float64)
    centers = boxes[:, :2] + boxes[:, 2:] / 2
    imgid = torch.zeros(2, dtype=torch.long)
    for variant in ("paper", "release-instance", "release-image"):
        settings = BboxMaskSettings(variant=variant)
        grads = term_gradients(torch.randn(1, 1, 16, 16, generator=g, dtype=torch.float64), boxes, imgid, centers,
                               settings)
        assert all(float(v.abs().max()) == 0.0 for v in grads.values()), variant
        grads = term_gradients(torch.randn(1, 8, 16, 16, generator=g, dtype=torch.float64), boxes, imgid, centers,
                               settings)
        assert float(grads["total"].abs().max()) > 0, variant
        if variant == "release-image":
            assert float(grads["pull_in"].abs().max()) == 0.0
