"""total_loss: Eq. 5 unit weights vs the release's weights and ÷B, the Table 4 ablations, CID outputs."""
from __future__ import annotations

import pytest
import torch

from boir_core.config import LossConfig
from boir_core.losses import (
    bbox_loss,
    bbox_mask_terms,
    cid_contrastive_loss,
    instance_heatmap_loss,
    multi_heatmap_loss,
    total_loss,
)

TERMS = ("multi_heatmap", "instance_heatmap", "bbox", "bbox_mask")


def test_paper_weighting_is_the_plain_sum_of_the_terms(make_batch):
    outputs, batch = make_batch()
    out = total_loss(outputs, batch, LossConfig())
    assert torch.allclose(out["total"], sum(out[k] for k in TERMS))
    assert torch.allclose(out["bbox_mask"], out["pull_in"] + out["push_out"] + out["push_inst"])
    want_multi = multi_heatmap_loss(outputs["center"], outputs["buk"], batch["multi_heatmap"], batch["multi_mask"])
    want_box = bbox_loss(outputs["bbox"], batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    want_emb = bbox_mask_terms(outputs["emb"], batch["instance_bbox"], batch["instance_imgid"],
                               batch["instance_center"]).loss
    want_inst = instance_heatmap_loss(outputs["instance_heatmap"], batch["instance_heatmap"], batch["instance_mask"])
    for k, v in zip(TERMS, (want_multi, want_inst, want_box, want_emb)):
        assert torch.allclose(out[k], v), k


def test_release_weighting_uses_config_weights_and_divides_by_images(make_batch):
    outputs, batch = make_batch(counts=(2, 1, 1))
    cfg = LossConfig(weighting="release", bbox_mask_variant="release-image", bbox_decode="release", bbox_weight=1.0)
    out = total_loss(outputs, batch, cfg)
    want = (1.0 * out["multi_heatmap"] + 4.0 * out["instance_heatmap"] + 1.0 * out["bbox"]
            + 0.25 * out["bbox_mask"]) / 3
    assert torch.allclose(out["total"], want)
    assert out["pull_in"] == 0  # level 1 is push-only
    paper = total_loss(outputs, batch, LossConfig())
    assert not torch.allclose(paper["bbox"], out["bbox"])  # decode switch reaches the box loss


def test_table4_ablations_and_cid_outputs(make_batch):
    outputs, batch = make_batch()
    no_mask = total_loss(outputs, batch, LossConfig(bbox_mask=False))
    assert "bbox_mask" not in no_mask and "bbox" in no_mask
    no_head = total_loss({k: v for k, v in outputs.items() if k != "bbox"}, batch, LossConfig())
    assert "bbox" not in no_head and torch.allclose(
        no_head["total"], no_head["multi_heatmap"] + no_head["instance_heatmap"] + no_head["bbox_mask"])
    cid = {"heatmap": torch.cat([outputs["buk"], outputs["center"]], 1), "features": outputs["features"],
           "instance_heatmap": outputs["instance_heatmap"]}
    out = total_loss(cid, batch, LossConfig())
    assert set(out) == {"multi_heatmap", "instance_heatmap", "contrastive", "total"}
    assert torch.allclose(out["multi_heatmap"], total_loss(outputs, batch, LossConfig())["multi_heatmap"])
    assert torch.allclose(out["total"], out["multi_heatmap"] + out["instance_heatmap"] + out["contrastive"])


def test_variant_options_reach_the_bbox_mask_loss(make_batch):
    outputs, batch = make_batch()
    base = total_loss(outputs, batch, LossConfig())["bbox_mask"]
    for change in (dict(beta=1.0), dict(emb_loss="contrastive"), dict(distance="cosine"), dict(instance_point="box"),
                   dict(bbox_mask_variant="release-instance")):
        assert not torch.allclose(total_loss(outputs, batch, LossConfig(**change))["bbox_mask"], base), change


def test_empty_batch_backward_and_missing_keys(make_batch):
    outputs, batch = make_batch(counts=(0, 0))
    outputs = {k: v.clone().requires_grad_() for k, v in outputs.items()}
    out = total_loss(outputs, batch, LossConfig())
    out["total"].backward()
    assert torch.isfinite(out["total"]) and out["bbox"] == 0 and out["bbox_mask"] == 0
    assert all(torch.isfinite(v.grad).all() for k, v in outputs.items() if v.grad is not None)
    with pytest.raises(KeyError, match="multi_mask"):
        total_loss(outputs, {k: v for k, v in batch.items() if k != "multi_mask"}, LossConfig())
    with pytest.raises(TypeError, match="LossConfig"):
        total_loss(outputs, batch, {"weighting": "paper"})


def test_instance_cap_uses_the_generator(make_batch):
    outputs, batch = make_batch(counts=(3, 3))
    cfg = LossConfig(max_instances=2)
    a = total_loss(outputs, batch, cfg, generator=torch.Generator().manual_seed(0))["instance_heatmap"]
    b = total_loss(outputs, batch, cfg, generator=torch.Generator().manual_seed(0))["instance_heatmap"]
    full = total_loss(outputs, batch, LossConfig())["instance_heatmap"]
    assert torch.equal(a, b) and not torch.allclose(a, full)


def test_total_is_fp32_under_autocast(make_batch):
    outputs, batch = make_batch()
    half = {k: v.bfloat16() for k, v in outputs.items()}
    fbatch = {k: (v.float() if v.is_floating_point() else v) for k, v in batch.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = total_loss(half, fbatch, LossConfig())
    assert all(v.dtype == torch.float32 for v in out.values())
    ref = total_loss({k: v.double() for k, v in half.items()}, batch, LossConfig())
    assert torch.allclose(out["total"].double(), ref["total"], atol=1e-4)


def test_losses_read_nothing_back_from_tensors(make_batch, monkeypatch):
    """No .item(), tensor-valued `if` or int()/float() of data inside the losses (the one documented read,
    the CPU padded capacity, is bypassed by giving ``capacity``, as a CUDA run does by using N)."""
    outputs, batch = make_batch()
    n = batch["instance_imgid"].numel()
    emb = outputs["emb"].clone().requires_grad_()

    def refuse(*args, **kwargs):
        raise AssertionError("a loss read a tensor value back to Python")

    for name in ("item", "tolist", "__bool__", "__int__", "__float__", "__index__", "nonzero"):
        monkeypatch.setattr(torch.Tensor, name, refuse)
    multi_heatmap_loss(outputs["center"], outputs["buk"], batch["multi_heatmap"], batch["multi_mask"])
    instance_heatmap_loss(outputs["instance_heatmap"], batch["instance_heatmap"], batch["instance_mask"])
    bbox_loss(outputs["bbox"], batch["instance_coord"], batch["instance_imgid"], batch["instance_bbox"])
    cid_contrastive_loss(outputs["features"], batch["instance_coord"], batch["instance_imgid"])
    for variant in ("paper", "release-instance", "release-image"):
        bbox_mask_terms(emb, batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"],
                        variant=variant, capacity=n).loss.backward()
    bbox_mask_terms(outputs["emb"], batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"],
                    kernel="contrastive", distance="cosine", capacity=n)
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="read a tensor value"):  # the guard itself works
        monkeypatch.setattr(torch.Tensor, "item", refuse)
        torch.ones(1).item()
