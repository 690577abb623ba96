"""State-dict names and shapes against the released checkpoints, parameter counts (Table 5), backbone output."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from model_helpers import official_shapes

from boir_core.model import CID, BoIR, HRNetBackbone, count_parameters
from boir_core.model.backbone import RELEASE_TO_TIMM, TIMM_TO_RELEASE


def _meta(cls, *a, **k):
    with torch.device("meta"):
        return cls(*a, **k)


@pytest.mark.parametrize("column,backbone,k,inst", [
    ("coco_w32", "hrnet_w32", 17, 64), ("coco_w48", "hrnet_w48", 17, 96), ("crowdpose_w32", "hrnet_w32", 14, 64)])
@pytest.mark.parametrize("train", [True, False])
def test_state_dict_equals_released_keys_and_shapes(column, backbone, k, inst, train):
    expected = official_shapes(column, train=train)
    model = _meta(BoIR, k, backbone, inst_channels=inst, train_heads=train)
    got = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    assert sorted(set(got) - set(expected)) == []
    assert sorted(set(expected) - set(got)) == []
    wrong = {n: (got[n], expected[n]) for n in expected if got[n] != expected[n]}
    assert wrong == {}


def test_timm_names_map_to_released_backbone_names_both_ways():
    released = {k[len("backbone."):] for k in official_shapes("coco_w32") if k.startswith("backbone.")}
    import timm

    with torch.device("meta"):
        net = timm.create_model("hrnet_w32", features_only=True, feature_location="", out_indices=(1, 2, 3, 4))
    timm_keys = set(net.state_dict())

    def to_release(k):
        top, rest = k.split(".", 1)
        return TIMM_TO_RELEASE[top] + "." + rest

    def to_timm(k):
        top, rest = k.split(".", 1)
        return RELEASE_TO_TIMM[top] + "." + rest

    assert {to_release(k) for k in timm_keys} == released
    assert {to_timm(k) for k in released} == timm_keys


def test_inference_model_has_no_training_heads_and_bbox_ablation_has_no_bbox_head():
    inf = _meta(BoIR, 17, "hrnet_w18_small", train_heads=False)
    assert inf.multihead.buk_head is None and inf.multihead.emb_head is None and inf.multihead.bbox_head is None
    abl = _meta(BoIR, 17, "hrnet_w18_small", bbox_head=False)
    assert abl.multihead.bbox_head is None and abl.multihead.buk_head is not None
    assert not any(k.startswith("multihead.bbox_head") for k in abl.state_dict())


@pytest.mark.parametrize("backbone,inst,inference,training", [
    ("hrnet_w32", 64, 31_832_030, 33_431_539), ("hrnet_w48", 96, 68_868_734, 70_468_243)])
def test_parameter_counts_table5(backbone, inst, inference, training):
    tr = count_parameters(_meta(BoIR, 17, backbone, inst_channels=inst, train_heads=True))
    inf = count_parameters(_meta(BoIR, 17, backbone, inst_channels=inst, train_heads=False))
    assert tr["total"] == training and tr["inference"] == inference
    assert inf["total"] == inference and inf["buk_head"] == inf["emb_head"] == inf["bbox_head"] == 0
    w32 = backbone == "hrnet_w32"
    assert tr["backbone"] == (29_305_536 if w32 else 65_325_120)
    assert tr["neck"] == (1_947_392 if w32 else 2_838_272)
    assert tr["kpt_head"] == (102_045 if w32 else 228_285)
    assert (tr["center_head"], tr["buk_head"], tr["emb_head"], tr["bbox_head"]) == (477_057, 495_505, 623_488, 480_516)


def test_parameter_counts_crowdpose_and_cid():
    cp = count_parameters(_meta(BoIR, 14, "hrnet_w32"))
    assert cp["buk_head"] == 492_046
    # closed form for K=14: heatmap_conv 64*14 + 14 instead of 64*17 + 17
    assert cp["kpt_head"] == 102_045 - 3 * 65
    cid = count_parameters(_meta(CID, 17, "hrnet_w32", inst_channels=32))
    assert cid["heatmap_head"] == 480 * 18 + 18
    gfd = 3 * (480 * 32 + 32) + (3 * 25 + 1) + (64 * 32 + 32) + (32 * 17 + 17)
    assert cid["kpt_head"] == gfd
    assert cid["total"] == cid["inference"] == 29_363_087


def test_cid_state_dict_names_follow_the_released_cid_code():
    model = _meta(CID, 17, "hrnet_w32", inst_channels=32)
    sd = model.state_dict()
    heads = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith("backbone.")}
    assert heads == {
        "iia.keypoint_center_conv.weight": (18, 480, 1, 1), "iia.keypoint_center_conv.bias": (18,),
        "gfd.conv_down.weight": (32, 480, 1, 1), "gfd.conv_down.bias": (32,),
        "gfd.c_attn.atn.weight": (32, 480), "gfd.c_attn.atn.bias": (32,),
        "gfd.s_attn.atn.weight": (32, 480), "gfd.s_attn.atn.bias": (32,),
        "gfd.s_attn.conv.weight": (1, 3, 5, 5), "gfd.s_attn.conv.bias": (1,),
        "gfd.fuse_attn.weight": (32, 64, 1, 1), "gfd.fuse_attn.bias": (32,),
        "gfd.heatmap_conv.weight": (17, 32, 1, 1), "gfd.heatmap_conv.bias": (17,),
    }
    released_backbone = {k for k in official_shapes("coco_w32") if k.startswith("backbone.")}
    assert {k for k in sd if k.startswith("backbone.")} == released_backbone


def test_backbone_concatenates_upsampled_branches_at_stride_4():
    torch.manual_seed(0)
    bb = HRNetBackbone("hrnet_w18_small").eval()
    assert bb.branch_channels == [16, 32, 64, 128] and bb.out_channels == 240
    for p in bb.parameters():  # larger weights than the release init, so the check is not trivially ~0
        torch.nn.init.normal_(p, std=0.05)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        branches = bb.branches(x)
        feats = bb(x)
    assert [tuple(b.shape[-2:]) for b in branches] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert feats.shape == (1, 240, 16, 24)
    # oracle: bilinear upsampling (align_corners=False) by explicit per-pixel interpolation for branch 1
    b1 = branches[1][0]
    h, w = 16, 24
    manual = torch.zeros(b1.shape[0], h, w)
    for yy in range(h):
        for xx in range(w):
            sy = max((yy + 0.5) / 2 - 0.5, 0.0)
            sx = max((xx + 0.5) / 2 - 0.5, 0.0)
            y0, x0 = int(sy), int(sx)
            y1, x1 = min(y0 + 1, b1.shape[1] - 1), min(x0 + 1, b1.shape[2] - 1)
            dy, dx = sy - y0, sx - x0
            manual[:, yy, xx] = ((1 - dy) * (1 - dx) * b1[:, y0, x0] + (1 - dy) * dx * b1[:, y0, x1]
                                 + dy * (1 - dx) * b1[:, y1, x0] + dy * dx * b1[:, y1, x1])
    assert torch.allclose(feats[0, :16], branches[0][0])
    assert torch.allclose(feats[0, 16:48], manual, atol=1e-6)


def test_backbone_release_init_and_bad_input():
    bb = HRNetBackbone("hrnet_w18_small")
    w = torch.cat([m.weight.flatten() for m in bb.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.001) < 1e-4 and abs(w.mean().item()) < 1e-4
    with pytest.raises(ValueError, match="images must be"):
        bb(torch.zeros(1, 1, 32, 32))
    with pytest.raises(ValueError, match="not supported"):
        HRNetBackbone("resnet50")
    # F must equal a manual upsample+concat of the branch outputs
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        br = bb.eval().branches(x)
        ref = torch.cat([br[0]] + [F.interpolate(b, size=(16, 16), mode="bilinear") for b in br[1:]], 1)
        assert torch.equal(bb(x), ref)


def test_parameter_table_rows():
    from boir_core.model import parameter_table

    rows = parameter_table(("hrnet_w32",), num_keypoints=17)
    by_model = {r["model"]: r for r in rows}
    assert all(r["backbone_name"] == "hrnet_w32" and r["backbone"] == 29_305_536 for r in rows)
    assert by_model["BoIR (inference)"]["total"] == 31_832_030
    assert by_model["BoIR (training)"]["total"] == 33_431_539
    assert by_model["CID"]["total"] == 29_363_087
