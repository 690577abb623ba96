"""total_loss: Eq. 5 unit weights vs the release's weights and ÷B, the Table 4 ablations, CID outputs and CID's
contrastive term with weight 1, the messages that name a missing key, ``loss.temperature`` reaching the loss,
and the one weight table (a term without a weight, or a weight without a term, is an error)."""
from __future__ import annotations

import pytest
import torch

from boir_core.config import LossConfig
from boir_core.losses import (
    BboxMaskSettings,
    bbox_loss,
    bbox_mask_terms,
    cid_contrastive_loss,
    instance_heatmap_loss,
    multi_heatmap_loss,
    total_loss,
)
from boir_core.losses.reference import bbox_mask_paper_ref
from boir_core.losses.total import REQUIRED_BATCH_KEYS

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
                        BboxMaskSettings(variant=variant, capacity=n)).loss.backward()
    bbox_mask_terms(outputs["emb"], batch["instance_bbox"], batch["instance_imgid"], batch["instance_center"],
                    BboxMaskSettings(kernel="contrastive", distance="cosine", capacity=n))
    monkeypatch.undo()
    with pytest.raises(AssertionError, match="read a tensor value"):  # the guard itself works
        monkeypatch.setattr(torch.Tensor, "item", refuse)
        torch.ones(1).item()


# ---- total_loss: messages, the temperature, CID's contrastive term ------------------------------------------


def _key_error(outputs, batch, cfg=None):
    with pytest.raises(KeyError) as info:
        total_loss(outputs, batch, cfg or LossConfig())
    return info.value.args[0]


def test_total_loss_names_the_mapping_and_the_key_that_is_missing(make_batch):
    outputs, batch = make_batch()
    for key in REQUIRED_BATCH_KEYS:
        msg = _key_error(outputs, {k: v for k, v in batch.items() if k != key})
        assert msg == f"total_loss: batch has no {key!r} (has: {sorted(k for k in batch if k != key)})"
    for key in ("instance_heatmap", "center", "buk"):
        rest = {k: v for k, v in outputs.items() if k != key}
        assert _key_error(rest, batch) == f"total_loss: outputs has no {key!r} (has: {sorted(rest)})"
    no_box = {k: v for k, v in batch.items() if k != "instance_bbox"}
    want = f"total_loss: batch has no 'instance_bbox' (has: {sorted(no_box)})"
    assert _key_error(outputs, no_box) == want  # needed by the box loss
    assert _key_error({k: v for k, v in outputs.items() if k != "bbox"}, no_box) == want  # and the Bbox Mask Loss
    with pytest.raises(TypeError) as info:
        total_loss(outputs, batch, {"weighting": "paper"})
    assert str(info.value) == "loss_cfg must be a boir_core.config.LossConfig, got dict"


def test_total_loss_passes_the_temperature_to_the_contrastive_bbox_mask_loss(make_batch):
    outputs, batch = make_batch(counts=(2, 1), size=(6, 5), emb_dim=3)
    out = total_loss(outputs, batch, LossConfig(emb_loss="contrastive", temperature=0.5))
    settings = BboxMaskSettings(kernel="contrastive", temperature=0.5)
    want = bbox_mask_paper_ref(outputs["emb"], batch["instance_bbox"], batch["instance_imgid"],
                               batch["instance_center"], settings)["bbox_mask"]
    assert torch.allclose(out["bbox_mask"], want, atol=1e-8)


def _alike_features(outputs, seed=0):
    """Features nearly equal at every pixel: CID's contrastive loss is then about log(instances of the image)."""
    g = torch.Generator().manual_seed(seed)
    f = outputs["features"]
    return torch.ones_like(f) + 0.01 * torch.randn(f.shape, generator=g, dtype=f.dtype)


@pytest.mark.parametrize("weighting", ["paper", "release"])
def test_cid_outputs_add_the_contrastive_loss_with_weight_one(make_batch, weighting):
    outputs, batch = make_batch(counts=(2, 0, 3))
    cid = {"heatmap": torch.cat([outputs["buk"], outputs["center"]], 1), "features": _alike_features(outputs),
           "instance_heatmap": outputs["instance_heatmap"]}
    cfg = LossConfig(weighting=weighting)
    out = total_loss(cid, batch, cfg)
    contrastive = cid_contrastive_loss(cid["features"], batch["instance_coord"], batch["instance_imgid"])
    assert contrastive > 0.5  # (2·log 2 + 3·log 3) / 5 ≈ 0.93: large enough to see
    assert torch.allclose(out["contrastive"], contrastive)
    if weighting == "paper":
        want = out["multi_heatmap"] + out["instance_heatmap"] + contrastive
    else:
        want = (cfg.multi_heatmap_weight * out["multi_heatmap"] + cfg.single_heatmap_weight * out["instance_heatmap"]
                + contrastive) / 3
    assert torch.allclose(out["total"], want, rtol=1e-12)


def test_boir_outputs_never_get_the_contrastive_loss_even_with_features(make_batch):
    outputs, batch = make_batch()
    outputs = dict(outputs, features=_alike_features(outputs))
    out = total_loss(outputs, batch, LossConfig())
    assert set(out) == {"multi_heatmap", "instance_heatmap", "bbox", "bbox_mask", "pull_in", "push_out", "push_inst",
                        "total"}
    assert torch.allclose(out["total"], out["multi_heatmap"] + out["instance_heatmap"] + out["bbox"] + out["bbox_mask"],
                          rtol=1e-12)


# ---- the one weight table -------------------------------------------------------------------------------


@pytest.mark.parametrize("weighting", ["paper", "release"])
def test_every_term_of_the_total_has_exactly_one_weight(make_batch, weighting):
    """``loss_weights`` names every term that can add to the total, and the total is Σ weight·term ÷ divisor over
    the terms computed, the Bbox Mask Loss's parts (pull_in, push_out, push_inst) not added again."""
    from boir_core.losses import TERM_PARTS, TERMS, loss_weights, weighted_total

    cfg = LossConfig(weighting=weighting, multi_heatmap_weight=2.0, single_heatmap_weight=3.0, bbox_weight=0.5,
                     bbox_mask_weight=0.75)
    weights, divisor = loss_weights(cfg, 4)
    assert set(weights) == set(TERMS) and set(TERM_PARTS) == {"pull_in", "push_out", "push_inst"}
    if weighting == "paper":
        assert set(weights.values()) == {1.0} and divisor == 1.0
    else:
        assert weights == {"multi_heatmap": 2.0, "instance_heatmap": 3.0, "bbox": 0.5, "bbox_mask": 0.75,
                           "contrastive": 1.0} and divisor == 4.0
        assert loss_weights(cfg) == (weights, 1.0)  # one image unless told: the divisor is the image count
    outputs, batch = make_batch()
    out = total_loss(outputs, batch, cfg)
    terms = {k: v for k, v in out.items() if k != "total"}
    n_images = batch["multi_heatmap"].shape[0]
    assert torch.equal(out["total"], weighted_total(terms, *loss_weights(cfg, n_images)))
    want = sum(weights[k] * out[k] for k in ("multi_heatmap", "bbox", "bbox_mask", "instance_heatmap"))
    assert torch.allclose(out["total"], want / (1.0 if weighting == "paper" else n_images), rtol=1e-12)


def test_a_term_without_a_weight_or_a_weight_without_a_term_is_an_error():
    """No term is silently left out of the total: a computed term the weight table does not know, and a weight
    that names no term (a misspelt term), are KeyErrors that name it."""
    from boir_core.losses import weighted_total

    one = torch.tensor(1.0)
    weights = {"multi_heatmap": 1.0, "instance_heatmap": 1.0}
    assert float(weighted_total({"multi_heatmap": one, "instance_heatmap": one, "pull_in": one}, weights)) == 2.0
    with pytest.raises(KeyError, match=r"the loss terms \['keypoint_offsets'\] have no weight"):
        weighted_total({"multi_heatmap": one, "keypoint_offsets": one}, weights)
    with pytest.raises(KeyError, match=r"weights for unknown loss terms \['bbox_maks'\]"):
        weighted_total({"multi_heatmap": one}, dict(weights, bbox_maks=0.25))
