"""Checkpoints reach the network they are meant for: a training state ``last.pt`` through the runner
(evaluate, predict) and ``train.transfer_from`` inside ``train`` (COCO → CrowdPose-style finetuning)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import torch

from boir_core.engine.training.checkpointing import load_training_state
from boir_core.engine.training.job import TrainingJob
from boir_core.engine.training.train import train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, tiny_synth):
    from boir_core.config import load_config

    cfg = load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu", "data.workers=0", "train.epochs=1",
                               "train.max_steps_per_epoch=2", "train.warmup_start_lr=0.001",
                               # every center proposal becomes a pose: results to compare even untrained
                               "test.center_threshold=0.0", "test.max_proposals=3"])
    run = tmp_path_factory.mktemp("trained")
    train(cfg, run, progress=False)
    return cfg, run


def test_evaluate_and_predict_with_a_training_state_last_pt(trained_run, tmp_path):
    from boir_core.engine.evaluation.runner import load_inference_model, run_evaluation
    from boir_core.engine.inference.predict import predict

    cfg, run = trained_run
    last = run / "checkpoints" / "last.pt"
    state = load_training_state(last)
    # the inference network holds exactly the training state's weights (training-only heads dropped)
    model, report = load_inference_model(cfg, last)
    sd = model.state_dict()
    assert set(sd) < set(state["model_state"])
    for k, v in sd.items():
        assert torch.equal(v, state["model_state"][k]), k
    assert {k for k in state["model_state"] if k not in sd} and all(
        k.startswith(("multihead.buk", "multihead.emb", "multihead.bbox")) for k in state["model_state"]
        if k not in sd)
    # the trained weights moved away from a fresh network's (the state is not an untrained one)
    fresh, _ = load_inference_model(cfg, None)
    assert any(not torch.equal(v, fresh.state_dict()[k]) for k, v in sd.items() if v.is_floating_point())

    # evaluating last.pt gives the poses and the metrics of final.pt (the same weights at the end of a run)
    from_last = run_evaluation(cfg, last, out_dir=tmp_path / "last", progress=False)
    from_final = run_evaluation(cfg, run / "final.pt", out_dir=tmp_path / "final", progress=False)
    poses = json.loads(from_last["results_path"].read_text())
    assert poses and poses == json.loads(from_final["results_path"].read_text())
    assert from_last["metrics"] == from_final["metrics"] and from_last["images"] == 3
    written = json.loads((tmp_path / "last" / "metrics.json").read_text())
    assert str(last) in json.dumps(written)  # the metrics name the checkpoint they came from

    # predict on an image file with last.pt gives the same poses as with final.pt
    img = tmp_path / "p.png"
    rgb = cv2.imread(str(sorted((Path(cfg.data.root) / "images" / "val").iterdir())[0]))
    cv2.imwrite(str(img), rgb)
    a = predict(cfg, last, [str(img)], output=tmp_path / "a.json")
    predict(cfg, run / "final.pt", [str(img)], output=tmp_path / "b.json")
    assert a["num_poses"] > 0
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads((tmp_path / "b.json").read_text())


def _weights_at_first_step(monkeypatch):
    """Record the network's state_dict as the first training step sees it (after any transfer)."""
    seen = {}
    real_step = TrainingJob.step

    def step(job, batch):
        if "state" not in seen:
            core = getattr(job.model, "module", job.model)
            seen["state"] = {k: v.detach().clone() for k, v in core.state_dict().items()}
        return real_step(job, batch)

    monkeypatch.setattr(TrainingJob, "step", step)
    return seen


@pytest.fixture(scope="module")
def synth14(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synth14")
    make_synthcrowd(root, SynthCrowdSpec(num_train=4, num_val=1, seed=4, num_keypoints=14, image_size=(112, 144),
                                         max_people=2))
    return root


def test_transfer_from_loads_a_17_keypoint_model_into_a_14_keypoint_training(tiny_cfg, synth14, tmp_path,
                                                                              monkeypatch):
    """The first step of a finetuning run sees the source checkpoint's tensors everywhere except the four
    keypoint outputs (K differs) and the training-only heads the inference checkpoint lacks; those keep
    exactly the initial values of a run without transfer (same seed)."""
    from boir_core.model import build_model, save_checkpoint
    from boir_core.model.checkpoints import TRANSFER_KEYS

    torch.manual_seed(123)
    source = build_model(tiny_cfg, train=False)  # a COCO-like 17-keypoint inference network
    with torch.no_grad():
        for p in source.parameters():
            p.add_(torch.randn_like(p))  # far from any fresh initialisation
    ckpt = save_checkpoint(source, tmp_path / "coco.pt")
    src = source.state_dict()

    base = tiny_cfg.override("data.dataset=synthcrowd14", f"data.root={synth14}", "train.epochs=1",
                             "train.max_steps_per_epoch=1")
    seen = _weights_at_first_step(monkeypatch)
    train(base, tmp_path / "scratch", progress=False)
    scratch = seen.pop("state")
    train(base.override(f"train.transfer_from={ckpt}"), tmp_path / "finetune", progress=False)
    tuned = seen["state"]

    four = set(TRANSFER_KEYS["boir"])
    assert four <= set(tuned) and {k for k in four if k.startswith("kpt_head.")} <= set(src)
    copied = [k for k in src if k not in four]
    assert len(copied) > 100
    for k in copied:
        assert torch.equal(tuned[k], src[k]), f"{k} was not transferred"
    for k in four:  # 14 outputs here, 17 in the file: trained from scratch, as without transfer
        assert tuned[k].shape[0] == 14 and torch.equal(tuned[k], scratch[k]), k
    aux = [k for k in tuned if k not in src]
    assert aux and all(k.startswith("multihead.") for k in aux)
    for k in aux:
        assert torch.equal(tuned[k], scratch[k]), f"{k}: a training-only head did not keep its initial value"


def test_transfer_from_a_missing_file_fails_before_training(tiny_cfg, tmp_path):
    with pytest.raises(Exception, match="nope.pt"):
        train(tiny_cfg.override(f"train.transfer_from={tmp_path / 'nope.pt'}"), tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "final.pt").exists()
