"""load_weights / save_checkpoint / export_released with state dicts built from official_state_dict.txt."""
from __future__ import annotations

import os

import pytest
import torch
from model_helpers import AUX, empty_model, official_shapes, random_state_dict

from boir_core.model import CID, BoIR, CheckpointError, export_released, load_model, load_weights, save_checkpoint
from boir_core.model.checkpoints import TRANSFER_KEYS


def _assert_all_equal(model, sd):
    msd = model.state_dict()
    bad = [k for k, v in sd.items() if not torch.equal(msd[k], v.to(msd[k].dtype))]
    assert bad == []


# ---- released BoIR checkpoints -----------------------------------------------------------------------

def test_release_w32_coco_training_model_loads_every_tensor():
    shapes = official_shapes("coco_w32", train=True)
    sd = random_state_dict(shapes)
    model = empty_model(BoIR, 17, "hrnet_w32", inst_channels=64, train_heads=True)
    rep = load_weights(model, sd)
    assert rep.kind == "boir-release" and len(rep.loaded) == len(shapes) and not rep.left_initialised
    _assert_all_equal(model, sd)
    exported = export_released(model)
    assert list(exported) == list(shapes)  # same keys, same order as the released file
    assert all(torch.equal(exported[k], sd[k]) for k in shapes)


def test_release_w48_inference_checkpoint_loads_every_tensor():
    shapes = official_shapes("coco_w48", train=False)
    sd = random_state_dict(shapes, cheap=True)
    model = empty_model(BoIR, 17, "hrnet_w48", inst_channels=96, train_heads=False)
    rep = load_weights(model, sd)
    assert len(rep.loaded) == len(shapes) and not rep.dropped
    _assert_all_equal(model, sd)


def test_release_crowdpose_k14_and_training_container_with_module_prefix():
    shapes = official_shapes("crowdpose_w32", train=True)
    sd = random_state_dict(shapes, seed=2, cheap=True)
    ckpt = {"epoch": 310, "perf": -1, "state_dict": {"module." + k: v for k, v in sd.items()},
            "best_state_dict": {k: torch.zeros(()).expand(v.shape) for k, v in sd.items()},
            "optimizer": {"state": {}, "param_groups": []}}
    model = empty_model(BoIR, 14, "hrnet_w32", inst_channels=64)
    rep = load_weights(model, ckpt)
    assert rep.kind == "boir-release-training" and "state_dict" in rep.notes[0]
    _assert_all_equal(model, sd)
    # an inference model takes the same file; the training-only heads are dropped and listed
    inf = empty_model(BoIR, 14, "hrnet_w32", inst_channels=64, train_heads=False)
    rep = load_weights(inf, sd)
    assert sorted(rep.dropped) == sorted(k for k in shapes if k.startswith(AUX))
    _assert_all_equal(inf, {k: v for k, v in sd.items() if not k.startswith(AUX)})


def test_inference_checkpoint_into_training_model_needs_explicit_permission():
    torch.manual_seed(0)
    model = BoIR(17, "hrnet_w18_small", inst_channels=8)
    inf = BoIR(17, "hrnet_w18_small", inst_channels=8, train_heads=False)
    sd = inf.state_dict()
    with pytest.raises(CheckpointError, match="allow_missing_aux_heads") as e:
        load_weights(model, sd)
    assert sorted(e.value.missing) == sorted(k for k in model.state_dict() if k.startswith(AUX))
    assert "multihead.buk_head.head.0.conv1.weight" in str(e.value)
    before = model.multihead.emb_head.output_conv.weight.clone()
    rep = load_weights(model, sd, allow_missing_aux_heads=True)
    aux_keys = [k for k in model.state_dict() if k.startswith(AUX)]
    assert sorted(rep.left_initialised) == sorted(aux_keys) and "left initialised" in rep.summary()
    assert torch.equal(model.multihead.emb_head.output_conv.weight, before)
    _assert_all_equal(model, sd)


def test_missing_unexpected_and_misshaped_keys_are_named():
    shapes = official_shapes("coco_w32", train=False)
    model = empty_model(BoIR, 17, "hrnet_w32", inst_channels=64, train_heads=False)
    sd = random_state_dict(shapes, cheap=True)
    del sd["kpt_head.s_attn.conv.bias"]
    sd["kpt_head.extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as e:
        load_weights(model, sd)
    assert "missing 1 tensors: kpt_head.s_attn.conv.bias" in str(e.value)
    assert "unexpected 1 tensors: kpt_head.extra.weight" in str(e.value)
    crowd = empty_model(BoIR, 14, "hrnet_w32", inst_channels=64, train_heads=False)
    with pytest.raises(CheckpointError, match="transfer=True"):
        load_weights(crowd, random_state_dict(shapes, cheap=True))
    with pytest.raises(CheckpointError, match="CID"):
        load_weights(model, {"iia.keypoint_center_conv.weight": torch.zeros(1)})


def test_transfer_17_to_14_drops_exactly_the_four_keypoint_outputs():
    sd = random_state_dict(official_shapes("coco_w32", train=True), seed=3)
    model = empty_model(BoIR, 14, "hrnet_w32", inst_channels=64)
    torch.nn.init.constant_(model.kpt_head.heatmap_conv.bias, -4.0)
    rep = load_weights(model, sd, transfer=True)
    four = set(TRANSFER_KEYS["boir"])
    assert set(rep.dropped) == four and set(rep.left_initialised) == four
    assert four == {"multihead.buk_head.head.1.weight", "multihead.buk_head.head.1.bias",
                    "kpt_head.heatmap_conv.weight", "kpt_head.heatmap_conv.bias"}
    _assert_all_equal(model, {k: v for k, v in sd.items() if k not in four})
    assert torch.equal(model.kpt_head.heatmap_conv.bias, torch.full((14,), -4.0))
    assert "transfer" in rep.summary()


# ---- CID ----------------------------------------------------------------------------------------------

def test_cid_released_layout_round_trip_and_wrong_arch():
    torch.manual_seed(0)
    cid = CID(17, "hrnet_w18_small", inst_channels=8)
    sd = {k: torch.randn_like(v.float()).to(v.dtype) if v.is_floating_point() else v
          for k, v in cid.state_dict().items()}
    other = CID(17, "hrnet_w18_small", inst_channels=8)
    rep = load_weights(other, sd)
    assert rep.kind == "cid-release"
    _assert_all_equal(other, sd)
    with pytest.raises(CheckpointError, match="holds a CID checkpoint but the model is BoIR"):
        load_weights(BoIR(17, "hrnet_w18_small", inst_channels=8, train_heads=False), sd)
    cp = CID(14, "hrnet_w18_small", inst_channels=8)
    rep = load_weights(cp, sd, transfer=True)
    assert set(rep.dropped) == set(TRANSFER_KEYS["cid"])


# ---- files, our format --------------------------------------------------------------------------------

def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(0)
    model = BoIR(17, "hrnet_w18_small", inst_channels=8, bbox_head_init="release")
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        model.multihead.center_head.head[0].bn1.running_mean.normal_()
    path = save_checkpoint(model, tmp_path / "run" / "model.pt", extra={"epoch": 3})
    assert os.listdir(path.parent) == ["model.pt"]  # no temporary files left
    fresh = BoIR(17, "hrnet_w18_small", inst_channels=8)
    rep = load_weights(fresh, path)
    assert rep.kind == "boir-kit"
    images = torch.randn(1, 3, 64, 64)
    coord, imgid = torch.tensor([[4, 5], [9, 1]]), torch.tensor([0, 0])
    model.eval(), fresh.eval()
    with torch.no_grad():
        a, b = model(images, coord, imgid), fresh(images, coord, imgid)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rebuilt = load_model(path, train_heads=False)
    assert rebuilt.multihead.buk_head is None
    with torch.no_grad():
        assert torch.equal(rebuilt.eval()(images, coord, imgid)["instance_heatmap"], a["instance_heatmap"])


@pytest.fixture(scope="module")
def tiny_inference_model():
    torch.manual_seed(0)
    return BoIR(17, "hrnet_w18_small", inst_channels=8, train_heads=False)


def test_save_is_atomic_when_writing_fails(tmp_path, monkeypatch, tiny_inference_model):
    model = tiny_inference_model
    path = save_checkpoint(model, tmp_path / "m.pt")
    before = path.read_bytes()

    def broken_save(obj, f, *a, **k):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(model, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.pt"]


def test_bad_files_give_clear_errors(tmp_path, tiny_inference_model):
    model = tiny_inference_model
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x80\x02not really a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt.pth: cannot be read"):
        load_weights(model, corrupt)
    with pytest.raises(CheckpointError, match="not found: .*nope.pth"):
        load_weights(model, tmp_path / "nope.pth")
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(2), "decoder.bias": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="other.pth: matches no known layout.*encoder.weight"):
        load_weights(model, other)
    with pytest.raises(CheckpointError, match="not a state_dict"):
        load_weights(model, {"epoch": 3, "lr": 0.1})


# ---- ImageNet -----------------------------------------------------------------------------------------

def test_imagenet_timm_file_fills_only_the_backbone(tmp_path):
    import timm

    torch.manual_seed(1)
    net = timm.create_model("hrnet_w18_small", pretrained=False)
    imagenet = net.state_dict()
    path = tmp_path / "hrnet_w18_small.pth"
    torch.save(imagenet, path)
    model = BoIR(17, "hrnet_w18_small", inst_channels=8)
    neck_before = model.multihead.neck[0].project[0].weight.clone()
    rep = load_weights(model, path)
    head_keys = [k for k in imagenet if k.startswith(("incre_modules.", "downsamp_modules.", "final_layer.",
                                                       "classifier."))]
    body = {k: v for k, v in imagenet.items() if k not in head_keys}
    assert rep.kind == "imagenet" and len(rep.loaded) == len(body) == len(model.backbone.state_dict())
    assert sorted(rep.dropped) == sorted(head_keys) and len(head_keys) > 0
    assert f"filled {len(body)} of {len(body)} backbone tensors" in rep.notes[0]
    _assert_all_equal(model.backbone, body)
    assert torch.equal(model.multihead.neck[0].project[0].weight, neck_before)
    # the same file through the config's model.pretrained (build_model loads it)
    from boir_core.config import Config
    from boir_core.model import build_model

    m2 = build_model(Config().override("model.backbone=hrnet_w18_small", "model.inst_channels=8",
                                       f"model.pretrained={path}"), train=True)
    assert m2.pretrained_report.kind == "imagenet" and m2.init_report.imagenet is m2.pretrained_report
    _assert_all_equal(m2.backbone, body)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_weights(BoIR(17, "hrnet_w18_small_v2", inst_channels=8, train_heads=False), path)


def test_imagenet_hrnet_classification_w48_naming_without_num_batches_tracked():
    backbone = {k[len("backbone."):]: s for k, s in official_shapes("coco_w48").items() if k.startswith("backbone.")}
    sd = random_state_dict({k: s for k, s in backbone.items() if not k.endswith("num_batches_tracked")}, cheap=True)
    sd.update({"incre_modules.0.0.conv1.weight": torch.zeros(32, 48, 1, 1),
               "downsamp_modules.0.0.weight": torch.zeros(256, 128, 3, 3),
               "final_layer.0.weight": torch.zeros(2048, 1024, 1, 1),
               "classifier.weight": torch.zeros(1000, 2048), "classifier.bias": torch.zeros(1000)})
    model = empty_model(BoIR, 17, "hrnet_w48", inst_channels=96, train_heads=False)
    rep = load_weights(model, {"state_dict": sd})
    assert len(rep.loaded) == len(sd) - 5 and len(rep.dropped) == 5
    _assert_all_equal(model.backbone, {k: v for k, v in sd.items() if k in backbone})
    nbt = [k for k in rep.left_initialised if k.startswith("backbone.") and k.endswith("num_batches_tracked")]
    assert len(nbt) == sum(k.endswith("num_batches_tracked") for k in backbone)
    with pytest.raises(CheckpointError, match="expected a imagenet checkpoint, found a boir one"):
        load_weights(model, random_state_dict(official_shapes("coco_w48", train=False), cheap=True),
                     expect="imagenet")


def test_hub_fails_fast_and_clearly_when_offline(monkeypatch, tiny_inference_model):
    from boir_core.model import load_imagenet

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tiny_inference_model
    for name in ("hub", "timm"):
        with pytest.raises(CheckpointError, match="hrnet_w18_small.ms_in1k.*HF_HUB_OFFLINE"):
            load_imagenet(model, name)
        # load_weights reads files and state_dicts only: it names the function that reads timm's weights
        with pytest.raises(CheckpointError, match=r"load_imagenet\(model, '" + name + r"'\)"):
            load_weights(model, name)


# ---- check_weights: the same checks, nothing loaded ----------------------------------------------------

def test_check_weights_on_a_meta_model_names_the_file_and_the_keypoint_count(tmp_path):
    from boir_core.model import check_weights

    sd = random_state_dict(official_shapes("coco_w32", train=True), seed=1)
    path = tmp_path / "boir_coco_w32.pth"
    torch.save(sd, path)
    with torch.device("meta"):  # shapes only: nothing allocated
        coco = BoIR(17, "hrnet_w32", inst_channels=64, train_heads=False)
        crowd = BoIR(14, "hrnet_w32", inst_channels=64, train_heads=False)
        w48 = BoIR(17, "hrnet_w48", inst_channels=96, train_heads=False)
    rep = check_weights(coco, path)
    assert rep.kind == "boir-release" and set(rep.loaded) == set(coco.state_dict())
    assert set(rep.dropped) == {k for k in sd if k.startswith(AUX)}  # the training-only heads
    with pytest.raises(CheckpointError) as e:
        check_weights(crowd, path)
    msg = str(e.value)
    assert msg.startswith(str(path)) and "the file has K=17 keypoints, the model K=14" in msg
    assert "kpt_head.heatmap_conv.weight: file (17, 64, 1, 1) vs model (14, 64, 1, 1)" in msg
    with pytest.raises(CheckpointError) as e:
        check_weights(w48, path)
    assert "backbone.transition1.0.0.weight: file (32, 256, 3, 3) vs model (48, 256, 3, 3)" in str(e.value)
    assert "the file has K=" not in str(e.value)  # the same K: no keypoint hint
    imagenet = tmp_path / "hrnetv2_w32_imagenet_pretrained.pth"
    torch.save({k[len("backbone."):]: v for k, v in sd.items()
                if k.startswith("backbone.") and not k.endswith("num_batches_tracked")}, imagenet)
    with pytest.raises(CheckpointError, match="ImageNet backbone weights .* not a BOIR checkpoint to evaluate"):
        check_weights(coco, imagenet)


def test_check_weights_leaves_the_model_untouched():
    from boir_core.model import check_weights

    torch.manual_seed(0)
    model = BoIR(17, "hrnet_w18_small", inst_channels=8, train_heads=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    other = {k: v + 1 if v.is_floating_point() else v for k, v in export_released(model).items()}
    check_weights(model, other)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    load_weights(model, other)  # the load itself does change them
    assert not torch.equal(before["kpt_head.heatmap_conv.bias"], model.kpt_head.heatmap_conv.bias)
