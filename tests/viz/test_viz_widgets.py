"""The loss explorer and the similarity viewer, driven headless through their callbacks."""
from __future__ import annotations

import pytest
import torch

from boir_core.losses import BboxMaskSettings, bbox_mask_terms
from boir_core.viz.widgets import LossExplorer, SimilarityViewer, ToyMap, explore_terms, toy_embedding

BOXES = [(2.0, 3.0, 8.0, 10.0), (7.0, 4.0, 8.0, 9.0)]


def test_explore_terms_equals_the_loss_and_masks_stay_in_boxes():
    res = explore_terms(BOXES, BboxMaskSettings(beta=10.0), toy=ToyMap(size=20, dim=8))
    bbox = torch.tensor(BOXES, dtype=torch.float64)
    t = bbox_mask_terms(res["emb"][None], bbox, torch.zeros(2, dtype=torch.long), bbox[:, :2] + bbox[:, 2:] / 2)
    assert res["total"] == pytest.approx(float(t.loss)) and res["push_inst"] == pytest.approx(float(t.loss_push_inst))
    soft = res["soft_masks"]
    assert soft.shape == (2, 20, 20) and soft[:, 15:, :].max() == 0  # nothing below the boxes
    assert 0 < soft.max() <= 1


@pytest.mark.parametrize("temperature", [None, 0.5])
def test_the_contrastive_explorer_uses_the_losss_temperature_and_kernel(temperature):
    """kernel="contrastive": the terms are the loss's with τ (default: the config's ``loss.temperature``), and each
    soft mask is the loss's ψ with β/D = 1/(2τ), exp(−‖e(u) − p‖²/(2τ)), inside the box."""
    from boir_core.config import LossConfig
    from boir_core.losses import distance_r, psi

    kw = {} if temperature is None else {"temperature": temperature}
    tau = LossConfig().temperature if temperature is None else temperature
    res = explore_terms(BOXES, BboxMaskSettings(beta=10.0, kernel="contrastive", **kw), toy=ToyMap(size=20, dim=8))
    bbox = torch.tensor(BOXES, dtype=torch.float64)
    t = bbox_mask_terms(res["emb"][None], bbox, torch.zeros(2, dtype=torch.long), bbox[:, :2] + bbox[:, 2:] / 2,
                        BboxMaskSettings(kernel="contrastive", temperature=tau))
    assert res["total"] == pytest.approx(float(t.loss), rel=1e-9)
    e = torch.nn.functional.normalize(res["emb"], dim=0)
    row, col = res["points"][0]
    by_hand = torch.exp(-distance_r(e.permute(1, 2, 0), e[:, row, col]) / (2 * tau))
    assert torch.allclose(psi(distance_r(e.permute(1, 2, 0), e[:, row, col]), 8 / (2 * tau), 8), by_hand)
    inside = res["soft_masks"][0] > 0
    assert inside.any()
    assert torch.allclose(torch.from_numpy(res["soft_masks"][0])[torch.from_numpy(inside)],
                          by_hand[torch.from_numpy(inside)], rtol=1e-9)


def test_toy_scene_separates_boxes_and_overlap_changes_push_inst():
    emb = toy_embedding(BOXES, size=20, dim=8, noise=0.0)
    assert torch.allclose(emb[:, 5, 3], emb[:, 6, 4]) and not torch.allclose(emb[:, 5, 3], emb[:, 5, 12])
    clean = ToyMap(size=20, dim=8, noise=0.0)
    apart = explore_terms([(0, 0, 6, 6), (13, 13, 6, 6)], toy=clean)
    overlap = explore_terms([(0, 0, 6, 6), (1, 1, 6, 6)], toy=clean)
    assert apart["pull_in"] == pytest.approx(0, abs=1e-12)  # a clean box: soft mean = p
    assert overlap["push_inst"] != pytest.approx(apart["push_inst"])


def test_loss_explorer_callbacks_headless():
    ex = LossExplorer(boxes=BOXES, size=20, dim=8)
    first = ex.update(draw=True)
    ex.box_sliders[1][0].value = 2.0  # move box 1 onto box 0: the observer recomputes
    assert ex.boxes[1][0] == 2.0 and ex.last["total"] != pytest.approx(first["total"])
    ex.variant.value = "release-image"
    assert ex.last["pull_in"] == 0 and "release-image" in ex.text.value
    ex.variant.value = "paper"
    ex.kernel.value = "contrastive"
    ex.beta.value = 1.0
    ex.dim.value = 16
    assert ex.last["emb"].shape[0] == 16 and "contrastive" in ex.text.value
    with pytest.raises(ValueError, match="two boxes"):
        LossExplorer(boxes=BOXES[:1])


def test_similarity_viewer_callbacks_headless():
    emb = toy_embedding(BOXES, size=20, dim=8, noise=0.0)
    v = SimilarityViewer(emb)
    v.row.value, v.col.value = 5, 3
    sim = v.update(draw=True)
    assert sim[5, 3] == pytest.approx(1.0) and sim[6, 4] == pytest.approx(1.0) and sim[5, 12] < 1
    v.kernel.value = "cosine"
    assert v.update(draw=False).min() >= -1
    with pytest.raises(ValueError, match="D, H, W"):
        SimilarityViewer(emb[0])
