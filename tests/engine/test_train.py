"""The training loop: determinism, auto-resume after a kill, non-finite handling, checkpoints, metrics."""
from __future__ import annotations

import json
import warnings

import pytest
import torch

import boir_core.engine.training.precision as precision_mod
import boir_core.losses as losses_mod
from boir_core.engine.training.checkpointing import load_training_state
from boir_core.engine.training.precision import amp_settings, cpu_has_native_bf16
from boir_core.engine.training.seeding import EpochKey, epoch_batches
from boir_core.engine.training.train import NonFiniteLossError, TrainHooks, TrainingInterrupted, train


def test_same_seed_same_losses_and_resume_matches_uninterrupted(tiny_cfg, tmp_path):
    cfg = tiny_cfg.override("train.epochs=2", "train.max_steps_per_epoch=3", "train.save_every=1")
    full = train(cfg, tmp_path / "full", progress=False)
    assert len(full.losses) == 6 and all(torch.isfinite(torch.tensor(full.losses)))

    # the same run, killed in the middle of epoch 2 (after the epoch-1 checkpoint) ...
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "killed", progress=False, hooks=TrainHooks(stop_after_iters=5))
    state = load_training_state(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["global_iter"] == 3
    assert not list((tmp_path / "killed").rglob("*.tmp")), "a half-written file was left behind"
    # ... then resumed: it continues from the checkpoint and reproduces the uninterrupted losses
    resumed = train(cfg, tmp_path / "killed", progress=False)
    assert resumed.resumed_from_epoch == 1 and resumed.iterations == 3
    assert resumed.losses == pytest.approx(full.losses[3:], rel=1e-5, abs=1e-7)

    # both runs end with identical weights
    a = torch.load(tmp_path / "full" / "final.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "killed" / "final.pt", weights_only=True)["state_dict"]
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)

    # the run folder holds the resolved config and per-iteration / per-epoch metrics
    lines = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert {r["type"] for r in lines} == {"iter", "epoch"}
    it = [r for r in lines if r["type"] == "iter"]
    assert len(it) == 6 and it[-1]["iter"] == 6 and "lr" in it[0] and "grad_norm" in it[0]
    assert it[0]["lr"] < it[1]["lr"] or cfg.train.warmup_epochs == 0  # warm-up rises
    assert (tmp_path / "full" / "config.yaml").read_text().count("max_steps_per_epoch: 3") == 1


def _nan_after(real, bad_iters):
    calls = {"n": 0}

    def fake(outputs, batch, loss_cfg, generator=None):
        out = real(outputs, batch, loss_cfg, generator=generator)
        calls["n"] += 1
        if calls["n"] in bad_iters:
            out = dict(out)
            out["total"] = out["total"] * float("nan")
        return out

    return fake


def test_a_nonfinite_loss_skips_the_step_with_a_counted_warning(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=3")
    monkeypatch.setattr(losses_mod, "total_loss", _nan_after(losses_mod.total_loss, {2}))
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = train(cfg, tmp_path / "run", progress=False)
    msgs = [str(x.message) for x in w if "non-finite" in str(x.message)]
    assert s.skipped_nonfinite == 1 and len(msgs) == 1 and "1 in a row, 1 in total" in msgs[0]
    assert len(s.losses) == 2  # the skipped step is not a loss value


def test_nonfinite_losses_in_a_row_stop_the_run(tiny_cfg, tmp_path, monkeypatch):
    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=3", "train.max_nonfinite_in_a_row=2")
    monkeypatch.setattr(losses_mod, "total_loss", _nan_after(losses_mod.total_loss, {1, 2, 3}))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NonFiniteLossError, match="2 non-finite steps in a row"):
            train(cfg, tmp_path / "run", progress=False)


def test_amp_settings_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_settings("auto", cpu) == (False, None, False)
    assert amp_settings("auto", cuda) == (True, torch.float16, True)
    assert amp_settings("bf16", cpu) == (True, torch.bfloat16, False)
    with pytest.raises(ValueError, match="needs a CUDA device"):
        amp_settings("fp16", cpu)
    with pytest.raises(ValueError, match="not one of"):
        amp_settings("fp8", cpu)


def test_amp_fast_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert amp_settings("fast", cuda) == (True, torch.float16, True)
    for native in (True, False):
        monkeypatch.setattr(precision_mod, "cpu_has_native_bf16", lambda native=native: native)
        expected = (True, torch.bfloat16, False) if native else (False, None, False)
        assert amp_settings("fast", cpu) == expected
    assert isinstance(cpu_has_native_bf16(), bool)


def test_channels_last_bf16_training_on_cpu(tiny_cfg, tmp_path):
    """The CPU demo's fast path (channels_last + bf16 autocast) trains, and its weights load into a plain
    NCHW model that computes what the NHWC one computes."""
    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=2", "train.amp=bf16",
                            "train.channels_last=true")
    s = train(cfg, tmp_path / "cl", progress=False)
    assert len(s.losses) == 2 and all(torch.isfinite(torch.tensor(s.losses)))
    from boir_core.engine.evaluation.runner import load_inference_model

    model, _ = load_inference_model(cfg, s.final_weights)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model.center_logits(model.features(images))
        model = model.to(memory_format=torch.channels_last)
        nhwc = model.center_logits(model.features(images.contiguous(memory_format=torch.channels_last)))
    torch.testing.assert_close(nhwc, plain, rtol=1e-4, atol=1e-4)


def test_bf16_autocast_step_on_cpu(tiny_cfg, tmp_path):
    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=2", "train.amp=bf16")
    s = train(cfg, tmp_path / "bf16", progress=False)
    assert len(s.losses) == 2 and all(torch.isfinite(torch.tensor(s.losses)))


def test_resuming_with_a_changed_config_is_refused(tiny_cfg, tmp_path):
    from boir_core.engine.training.resume_check import ResumeMismatchError, config_changes

    cfg = tiny_cfg.override("train.epochs=1", "train.max_steps_per_epoch=1")
    train(cfg, tmp_path / "run", progress=False)
    with pytest.raises(ResumeMismatchError, match=r"loss.beta: 10.0 -> 5.0"):
        train(cfg.override("loss.beta=5"), tmp_path / "run", progress=False)
    assert "beta: 10.0" in (tmp_path / "run" / "config.yaml").read_text()  # the run's record is untouched
    restarted = train(cfg.override("loss.beta=5"), tmp_path / "run", resume="or-restart", progress=False)
    assert restarted.resumed_from_epoch is None and restarted.iterations == 1
    assert "beta: 5.0" in (tmp_path / "run" / "config.yaml").read_text()
    cfg = cfg.override("loss.beta=5")
    # where and how it runs may change: nothing left to do, no error
    again = train(cfg.override("train.log_every=7", "test.max_images=3"), tmp_path / "run", progress=False)
    assert again.iterations == 0 and again.resumed_from_epoch == 1
    assert config_changes({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == ["a.c: 2 -> 3"]


def test_persistent_workers_follow_the_epoch_like_the_main_process(tiny_cfg):
    # one persistent DataLoader worker for the whole run: each epoch's augmentation must still reach it
    from boir_core.data import KeypointDataset
    from boir_core.engine.distributed import DistInfo
    from boir_core.engine.training.job import build_training_data

    cfg = tiny_cfg.override("data.workers=1")
    data = build_training_data(cfg, DistInfo())
    sampler, loader, gen = data.sampler, data.loader, data.generator
    assert loader.persistent_workers
    reference = KeypointDataset.from_config(cfg, split=cfg.data.train_split, train=True)
    workers = set()
    for epoch in (0, 1, 2):
        batch = next(epoch_batches(loader, sampler, gen, EpochKey(cfg.train.seed, epoch, rank=0)))
        workers.add(id(loader._iterator._workers[0]))
        order = [i for _, i in sampler][: cfg.train.batch_size]
        reference.set_epoch(epoch)
        expected = torch.stack([reference[i]["image"] for i in order])
        assert torch.equal(batch["image"], expected), f"epoch {epoch}: the worker used another epoch's stream"
    assert len(workers) == 1  # the same worker process served all three epochs
