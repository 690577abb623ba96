"""ImageNet initialisation (model.pretrained): every released setting uses it; timm's cache, local files in the
official and timm layouts, strict about missing tensors, a clear error offline; finetunes start from COCO.

No test reaches a network: the files (and the Hugging Face cache) are built here from timm's architecture with
random weights, under the official names (the timm -> release name mapping, which is the identity)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from boir_core.config import configs_dir, load_config
from boir_core.model import CheckpointError, PretrainedUnavailable, build_model, save_checkpoint
from boir_core.model.backbone import IMAGENET_HEAD_PREFIXES, TIMM_TO_RELEASE

CPU_DEMO = ("demo", "tiny", "demo_shipped_boir", "demo_shipped_cid")  # from scratch on purpose (SynthCrowd)
RELEASED = sorted(p.stem for p in configs_dir().glob("*.yaml") if p.stem not in CPU_DEMO)
ABLATIONS = sorted(f"ablations/{p.stem}" for p in (configs_dir() / "ablations").glob("*.yaml"))
SMALL = ["model.backbone=hrnet_w18_small", "model.inst_channels=8", "model.neck_channels=16",
         "model.neck_middle_channels=8", "model.head_channels=8", "model.emb_dim=8"]


def _classification_state_dict(backbone: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """An ImageNet HRNet classification checkpoint with random values under the official / timm names."""
    import timm

    torch.manual_seed(seed)
    net = timm.create_model(backbone, pretrained=False)
    sd = {}
    for k, v in net.state_dict().items():
        top = k.split(".")[0]
        name = k if top not in TIMM_TO_RELEASE else TIMM_TO_RELEASE[top] + k[len(top):]
        sd[name] = (torch.randn_like(v) if v.is_floating_point() else v).contiguous()
    return sd


def _official_file(tmp_path: Path, backbone: str) -> tuple[Path, dict]:
    """The official hrnetv2_w*_imagenet_pretrained.pth: a plain state_dict, no num_batches_tracked."""
    sd = {k: v for k, v in _classification_state_dict(backbone).items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / f"hrnetv2_{backbone}_imagenet_pretrained.pth"
    torch.save(sd, path)
    return path, sd


def _assert_backbone_is(model, sd):
    body = model.backbone.state_dict()
    filled = [k for k in body if not k.endswith("num_batches_tracked")]
    assert filled and all(torch.equal(body[k], sd[k]) for k in filled)


@pytest.mark.parametrize("name", RELEASED + ABLATIONS)
def test_every_released_setting_starts_from_imagenet(name):
    cfg = load_config(name)
    assert cfg.model.pretrained == "timm", name
    assert cfg.preset == "paper"


def test_the_cpu_demo_configs_train_from_scratch_on_purpose():
    for name in CPU_DEMO:
        assert load_config(name).model.pretrained is None, name


def test_official_w32_file_fills_every_backbone_tensor_of_coco_w32(tmp_path):
    path, sd = _official_file(tmp_path, "hrnet_w32")
    cfg = load_config("coco_w32", [f"model.pretrained={path}"])
    torch.manual_seed(1)
    model = build_model(cfg, train=True)
    _assert_backbone_is(model, sd)
    rep = model.pretrained_report
    assert rep.kind == "imagenet" and rep.source == str(path)
    heads = sorted(k for k in sd if k.startswith(IMAGENET_HEAD_PREFIXES))
    assert heads and sorted(rep.dropped) == heads  # the classification head is dropped and reported
    assert len(rep.loaded) == len(sd) - len(heads)
    assert model.init_report.source.startswith(f"ImageNet: {path}")
    # the neck and heads keep their initialisation (same seed, no pretrained -> same values)
    torch.manual_seed(1)
    fresh = build_model(cfg.override("model.pretrained=none"), train=True)
    assert torch.equal(model.multihead.neck[0].project[0].weight, fresh.multihead.neck[0].project[0].weight)
    assert not torch.equal(model.backbone.conv1.weight, fresh.backbone.conv1.weight)


def test_timm_safetensors_and_training_checkpoint_files(tmp_path):
    from safetensors.torch import save_file

    sd = _classification_state_dict("hrnet_w18_small", seed=2)
    st = tmp_path / "model.safetensors"
    save_file(sd, str(st))
    model = build_model(load_config("tiny", [f"model.pretrained={st}"]), train=True)
    _assert_backbone_is(model, sd)
    ckpt = tmp_path / "timm_train_checkpoint.pth.tar"  # timm's train.py: {"state_dict": {"module." ...}}
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in sd.items()}}, ckpt)
    model = build_model(load_config("tiny", [f"model.pretrained={ckpt}"]), train=True)
    _assert_backbone_is(model, sd)
    assert model.pretrained_report.notes[-1].startswith("filled")


def test_missing_tensors_are_named_and_nothing_is_loaded_partially(tmp_path):
    sd = _classification_state_dict("hrnet_w18_small")
    gone = ["stage3.0.branches.1.0.conv2.weight", "layer1.0.downsample.1.running_var"]
    path = tmp_path / "cut.pth"
    torch.save({k: v for k, v in sd.items() if k not in gone}, path)
    with pytest.raises(CheckpointError) as e:
        build_model(load_config("tiny", [f"model.pretrained={path}"]), train=True)
    assert ("cut.pth" in str(e.value) and all(k in str(e.value) for k in gone)
            and sorted(e.value.missing) == sorted(gone))
    # a file of another architecture (a BoIR checkpoint given as ImageNet weights) is refused by name
    boir = tmp_path / "boir.pt"
    save_checkpoint(build_model(load_config("tiny"), train=False), boir)
    with pytest.raises(CheckpointError, match="boir.pt: expected a imagenet checkpoint"):
        build_model(load_config("tiny", [f"model.pretrained={boir}"]), train=True)


def test_a_named_file_that_is_not_there_is_an_error_not_a_fallback(tmp_path):
    missing = tmp_path / "hrnetv2_w32_imagenet_pretrained.pth"
    with pytest.raises(CheckpointError, match=f"model.pretrained={missing}: file not found"):
        build_model(load_config("tiny", [f"model.pretrained={missing}"]), train=True)


def test_timm_offline_without_cache_names_both_ways_out(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretrainedUnavailable) as e:
        build_model(load_config("tiny", ["model.pretrained=timm"]), train=True)
    msg = str(e.value)
    assert "hrnet_w18_small.ms_in1k" in msg and "HF_HUB_OFFLINE" in msg
    assert "model.pretrained=/path/to/" in msg  # way out 1: a local file
    assert "go online" in msg and "pre-populate" in msg and "models--timm--hrnet_w18_small.ms_in1k" in msg  # 2


def test_timm_reads_a_populated_hugging_face_cache_offline(tmp_path, monkeypatch):
    import huggingface_hub.constants as hf
    from safetensors.torch import save_file

    sd = _classification_state_dict("hrnet_w18_small", seed=5)
    repo = tmp_path / "hub" / "models--timm--hrnet_w18_small.ms_in1k"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    (repo / "snapshots" / commit).mkdir(parents=True)
    save_file(sd, str(repo / "snapshots" / commit / "model.safetensors"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", True)
    model = build_model(load_config("tiny", ["model.pretrained=timm"]), train=True)
    assert model.pretrained_report.source == "timm:hrnet_w18_small.ms_in1k"
    _assert_backbone_is(model, sd)


def test_finetune_starts_from_the_coco_checkpoint_and_reads_no_imagenet_file(tmp_path):
    coco = build_model(load_config("coco_w32", SMALL), train=True, initialise=False)
    ckpt = save_checkpoint(coco, tmp_path / "boir_coco_w32.pt")
    cfg = load_config("crowdpose_w32_finetune", [*SMALL, f"train.transfer_from={ckpt}"])
    assert cfg.model.pretrained == "timm"  # inherited, but a transfer replaces every backbone tensor
    model = build_model(cfg, train=True)  # offline, no ImageNet file: works, ImageNet is not read
    rep = model.init_report
    assert rep.imagenet is None and rep.transfer.kind == "boir-kit" and "not read" in rep.notes[0]
    assert model.num_keypoints == 14
    assert torch.equal(model.backbone.conv1.weight, coco.backbone.conv1.weight)
    assert sorted(rep.transfer.dropped) == sorted(["multihead.buk_head.head.1.weight", "multihead.buk_head.head.1.bias",
                                                   "kpt_head.heatmap_conv.weight", "kpt_head.heatmap_conv.bias"])
