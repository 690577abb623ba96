"""A continuous held-out score for runs too short to find people: the instance keypoint loss on val images.

A few hundred training steps leave AP at 0 (no person is found well enough to match), yet the network has
learnt something; :func:`held_out_keypoint_loss` measures it. The make demo's curve, the recipe study and the
seed study (notebook 06) read it beside AP.
"""
from __future__ import annotations

import torch

from ...config import Config
from ...data import KeypointDataset, collate_train
from ...losses import instance_heatmap_loss
from .runner import load_inference_model

__all__ = ["held_out_keypoint_loss", "network_keypoint_loss"]


def held_out_keypoint_loss(cfg: Config, weights, max_images: int = 8, device: str = "cpu") -> float:
    """The instance keypoint focal loss (the primary task, common to BoIR and CID) of ``weights`` on the first
    ``max_images`` images of the test split, without augmentation, at the ground-truth centers (inference
    network, eval mode). A continuous score where a few training steps leave AP at 0; lower is better."""
    model, _ = load_inference_model(cfg, weights, device)
    return network_keypoint_loss(model, cfg, max_images)


def network_keypoint_loss(model, cfg: Config, max_images: int = 8) -> float:
    """:func:`held_out_keypoint_loss` of an inference network already loaded (e.g. a
    :class:`~boir_core.engine.inference.predictor.Predictor`'s ``model``), on the device it is on."""
    device = next(model.parameters()).device
    ds = KeypointDataset.from_config(cfg, split=cfg.data.test_split, train=True, flip=0.0, max_rotation=0.0,
                                     min_scale=1.0, max_scale=1.0, max_translate=0, center_jitter=False)
    n = len(ds) if max_images <= 0 else min(len(ds), int(max_images))
    batch = collate_train([ds[i] for i in range(n)])
    with torch.no_grad():
        feats = model.features(batch["image"].to(device))
        logits = model.instance_heatmaps(feats, batch["instance_coord"].to(device), batch["instance_imgid"].to(device))
        loss = instance_heatmap_loss(logits, batch["instance_heatmap"].to(device), batch["instance_mask"].to(device),
                                     max_instances=0)
    return float(loss)
