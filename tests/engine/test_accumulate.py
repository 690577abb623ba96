"""Gradient accumulation and the effective batch (boir_core.engine.training.effective_batch, TrainingJob.step):

- k micro-batches summed in one step equal one step on the whole batch, on a network without BatchNorm whose
  loss is a mean over images (an oracle written here: plain forward, backward and SGD on the whole batch);
- the accumulating micro-steps run inside the job's ``no_sync`` collaborator (a spy passed in);
- a run whose effective batch is not the paper's says so in one line, in its metrics and weights, and in the dry
  run; ``train.lr_scaling=linear`` scales the learning rate by effective / paper, ``none`` leaves it.
The two-process gloo check (2 processes x accumulate 2 = 1 process x accumulate 4) is in test_accumulate_ddp.py.
"""
from __future__ import annotations

import contextlib
import copy
import json

import pytest
import torch

from boir_core.config import Config, ConfigError
from boir_core.engine.distributed import DistInfo
from boir_core.engine.evaluation.evaluate import MetricsProvenance, write_metrics_json
from boir_core.engine.inference.weights import _weights_batch
from boir_core.engine.jobs.dryrun import dry_run, format_dry_run
from boir_core.engine.training.effective_batch import EffectiveBatch, effective_batch
from boir_core.engine.training.job import TrainingJob, build_job, images_in
from boir_core.engine.training.optimization import Optimization
from boir_core.engine.training.precision import Precision
from boir_core.engine.training.schedule import iterations_per_epoch
from boir_core.engine.training.train import train
from boir_core.model import read_checkpoint
from boir_core.paper.results import parse_result

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


class NoBatchNorm(torch.nn.Module):
    """A small conv net without BatchNorm, called like the kit's networks."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.Tanh(),
                                        torch.nn.Conv2d(4, 2, 1))

    def forward(self, images, instance_coord, instance_imgid):
        return {"out": self.body(images)}


def mean_over_images_loss(outputs, batch, loss_cfg, generator=None):
    """A loss that is a mean over the images of the batch (so equal micro-batches average to the whole batch's)."""
    err = ((outputs["out"] - batch["target"]) ** 2).mean(dim=(1, 2, 3))
    return {"total": err.mean(), "max_err": err.max()}


class NoSyncSpy:
    """Stands in for DDP's no_sync: counts how often a micro-step runs inside it."""

    def __init__(self):
        self.entered = 0

    @contextlib.contextmanager
    def __call__(self):
        self.entered += 1
        yield


def _job(model, accumulate: int, spy: object = "a spy") -> TrainingJob:
    cfg = Config().override(f"train.accumulate={accumulate}", "train.clip_grad=1e9", "train.device=cpu")
    opt = Optimization(torch.optim.SGD(model.parameters(), lr=0.5), torch.amp.GradScaler("cuda", enabled=False),
                       Precision.of("off", torch.device("cpu")), iters_per_epoch=1)
    return TrainingJob(cfg, DistInfo(), None, model, model, opt, no_sync=NoSyncSpy() if spy == "a spy" else spy,
                       loss_fn=mean_over_images_loss)


def _whole_batch(n: int = 6) -> dict:
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(n, 3, 5, 6, generator=g), "target": torch.randn(n, 2, 5, 6, generator=g),
            "instance_coord": torch.zeros(0, 2, dtype=torch.long), "instance_imgid": torch.zeros(0, dtype=torch.long)}


def _split(batch: dict, k: int) -> list[dict]:
    n = batch["image"].shape[0] // k
    return [{key: (v[i * n:(i + 1) * n] if key in ("image", "target") else v) for key, v in batch.items()}
            for i in range(k)]


@pytest.mark.parametrize("k", [2, 3])
def test_k_micro_batches_equal_one_step_on_the_whole_batch(k):
    whole = _whole_batch(6)
    oracle = NoBatchNorm()
    net = copy.deepcopy(oracle)
    # the oracle: one forward / backward on all 6 images, then p <- p - lr * grad
    loss = ((oracle(whole["image"], None, None)["out"] - whole["target"]) ** 2).mean(dim=(1, 2, 3)).mean()
    loss.backward()
    with torch.no_grad():
        for p in oracle.parameters():
            p -= 0.5 * p.grad
    spy = NoSyncSpy()
    result = _job(net, k, spy).step(_split(whole, k))
    assert result.finite and spy.entered == k - 1  # every micro-step but the last inside no_sync
    # the reported loss is the mean of the micro-batches' means
    assert result.terms["total"] == pytest.approx(float(loss.detach()), rel=1e-6)
    for (name, a), b in zip(net.named_parameters(), oracle.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_one_micro_batch_is_the_step_as_before_and_never_enters_no_sync():
    whole = _whole_batch(4)
    a, b = NoBatchNorm(), NoBatchNorm()
    spy = NoSyncSpy()
    _job(a, 1, spy).step(whole)  # a dict: one micro-batch
    _job(b, 1).step([whole])  # a list of one
    assert spy.entered == 0
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))
    assert images_in(_split(whole, 2)) == images_in(whole) == 4
    c, d = NoBatchNorm(), NoBatchNorm()
    _job(c, 2).step(_split(whole, 2))
    _job(d, 2, None).step(_split(whole, 2))  # no collaborator given: the model's own (none without DDP)
    assert all(torch.equal(x, y) for x, y in zip(c.parameters(), d.parameters()))


def test_effective_batch_warning_suggestion_and_lr_scaling():
    paper = EffectiveBatch(world_size=1, batch_size=20, accumulate=4, paper=80)
    assert paper.effective == 80 and paper.matches_paper and paper.warning(1e-3) is None
    one_gpu = EffectiveBatch(1, 20, 1, 80)
    w = one_gpu.warning(1e-3)
    assert w.count("\n") == 0 and "effective batch 20 = 1 process x 20 images x accumulate 1" in w
    assert "not the paper's 80" in w and "train.accumulate=4" in w and "0.00025" in w  # what linear would give
    assert one_gpu.lr(1e-3) == 1e-3  # none: the configured rate
    linear = EffectiveBatch(1, 20, 1, 80, "linear")
    assert linear.lr(1e-3) == pytest.approx(2.5e-4) and "scaled linearly to 0.00025" in linear.warning(1e-3)
    assert "train.batch_size=16 train.accumulate=5" in EffectiveBatch(1, 18, 1, 80).warning(1e-3)
    assert EffectiveBatch(2, 8, 1, 0).matches_paper is None and EffectiveBatch(2, 8, 1, 0).warning(1e-3) is None
    tc = Config().train
    assert effective_batch(Config().override("train.accumulate=3", "train.batch_size=5").train, 2).effective == 30
    for bad, key in ((["train.accumulate=0"], "train.accumulate"), (["train.lr_scaling=linear"], "paper_effective")):
        with pytest.raises(ConfigError, match=key):
            effective_batch(Config().override(*bad).train)
    assert tc.accumulate == 1 and tc.lr_scaling == "none" and tc.paper_effective_batch == 0


def test_the_paper_configs_state_80_once_and_the_demo_none():
    from boir_core.config import load_config

    for name in ("coco_w32", "coco_w48", "crowdpose_w32_finetune", "ochuman_w32", "cid_coco_w32"):
        assert load_config(name).train.paper_effective_batch == 80, name
    assert load_config("demo").train.paper_effective_batch == 0


@pytest.fixture()
def acc_cfg(tiny_cfg):
    """8 images in micro-batches of 2, accumulate 2: 2 steps of 4 images an epoch; the paper's batch says 8."""
    return tiny_cfg.override("data.input_size=64", "data.output_size=16", "train.max_steps_per_epoch=0",
                             "train.epochs=1", "train.warmup_epochs=1", "train.accumulate=2",
                             "train.paper_effective_batch=8", "train.save_every=100")


def test_a_run_off_the_papers_batch_says_so_records_it_and_scales_lr_when_asked(acc_cfg, tmp_path, capsys):
    from boir_core.engine.training.schedule import warmup_cosine_schedule

    cfg = acc_cfg.override("train.lr_scaling=linear")  # 4 of the paper's 8: half the rate
    s = train(cfg, tmp_path / "run", progress=False)
    out = capsys.readouterr().out
    warn = [line for line in out.splitlines() if "WARNING" in line]
    assert len(warn) == 1 and "effective batch 4 = 1 process x 2 images x accumulate 2" in warn[0]
    assert "not the paper's 8" in warn[0] and "scaled linearly" in warn[0]
    assert s.total_steps == s.iterations == 2  # 4 micro-batches of 2 images, 2 per step
    assert iterations_per_epoch(8, 2, 1, 0, accumulate=2) == 2 and iterations_per_epoch(56_599, 20, 1, 0, 4) == 707
    assert s.batch["effective"] == 4 and s.batch["paper"] == 8 and s.lr == pytest.approx(cfg.train.lr / 2)
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert epochs and all(r["effective_batch"] == 4 and r["paper_effective_batch"] == 8 for r in epochs)
    want = warmup_cosine_schedule(2, s.plan["warmup_steps"], cfg.train.lr / 2, cfg.train.warmup_start_lr,
                                  cfg.train.min_lr)
    got = [r["lr"] for r in records if r["type"] == "iter"]
    assert len(got) == 2 and got == pytest.approx([float(x) for x in want[:2]])
    weights = read_checkpoint(tmp_path / "run" / "final.pt")
    assert weights["extra"]["batch"]["effective"] == 4 and weights["extra"]["batch"]["matches_paper"] is False
    # what the evaluation reads from the weights and writes into metrics.json, which reproduce reads
    path = write_metrics_json(tmp_path / "metrics.json", dataset="synthcrowd", split="val", metrics={"AP": 0.1},
                              provenance=MetricsProvenance(key="boir_w32_coco_val", batch=_weights_batch(weights)))
    result = parse_result(json.loads(path.read_text()))
    assert (result.effective_batch, result.paper_effective_batch, result.off_paper_batch) == (4, 8, True)


def test_the_dry_run_prints_the_effective_batch_and_warns(acc_cfg):
    r = dry_run(acc_cfg, steps=1, log=lambda m: None)
    assert r["images_per_step"] == 4 and r["accumulate"] == 2 and r["effective_batch"]["paper"] == 8
    text = format_dry_run(r, config=False)
    assert "effective batch:    4 (paper: 8)" in text and "WARNING:" in text and "train.accumulate=4" in text
    assert "4 (2 per process x 1 process(es) x accumulate 2; BatchNorm statistics over 2)" in text


def test_a_bad_accumulate_is_named_before_any_work(tiny_cfg):
    with pytest.raises(ConfigError, match="train.accumulate"):
        build_job(tiny_cfg.override("train.accumulate=0"), DistInfo())
