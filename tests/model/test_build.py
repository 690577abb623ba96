"""build_model reads cfg.model and cfg.num_keypoints."""
from __future__ import annotations

import pytest
import torch

from boir_core.config import Config
from boir_core.model import CID, BoIR, CheckpointError, build_model


def _cfg(*overrides):
    return Config().override("model.backbone=hrnet_w18_small", "model.inst_channels=8", *overrides)


def test_build_boir_training_and_inference():
    with torch.device("meta"):
        tr = build_model(_cfg("model.bbox_head_init=release"), train=True)
        inf = build_model(_cfg("data.dataset=crowdpose"), train=False)
        abl = build_model(_cfg("model.bbox_head=false", "model.emb_dim=16"), train=True)
    assert isinstance(tr, BoIR) and tr.has_train_heads and tr.config["bbox_head_init"] == "release"
    assert tr.kpt_head.heatmap_conv.out_channels == 17 and tr.kpt_head.conv_down.out_channels == 8
    assert not inf.has_train_heads and inf.num_keypoints == 14
    assert abl.multihead.bbox_head is None and abl.multihead.emb_head.output_conv.out_channels == 16


def test_build_cid_and_pretrained_errors(tmp_path):
    with torch.device("meta"):
        cid = build_model(_cfg("model.arch=cid"), train=True)
    assert isinstance(cid, CID) and cid.gfd.conv_down.out_channels == 8
    missing = tmp_path / "imagenet.pth"
    with pytest.raises(CheckpointError, match="imagenet.pth"):
        build_model(_cfg(f"model.pretrained={missing}"), train=True)
    # the inference model never loads ImageNet weights (a checkpoint is loaded instead)
    with torch.device("meta"):
        assert build_model(_cfg(f"model.pretrained={missing}"), train=False).pretrained_report is None
