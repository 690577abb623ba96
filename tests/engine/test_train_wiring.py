"""The training run is the one configured: optimiser, gradient clipping, warm-up, weight decay, the learning
rate of every iteration and the data each DDP rank sees.

The golden values are computed here, independently of the engine: a copy of the initial network, the same
batches, autograd for the gradients, then a hand-written global-norm clip and AdamW step (decoupled weight
decay, bias-corrected moments) in float64. The engine runs through its real ``train`` / ``TrainingJob.step``; the
tests only watch (they record the batches, the initial weights and the optimiser's learning rate).
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch

import boir_core.engine.training.job as job_mod
import boir_core.engine.training.train as train_mod
from boir_core.engine.distributed import DistInfo
from boir_core.engine.training.job import TrainingJob, build_job
from boir_core.engine.training.train import TrainHooks, train
from boir_core.losses import total_loss

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which the engine uses


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _closed_form_lr(i, total, warmup, base, start, end):
    """Warm-up (linear, both endpoints included) then cosine to ``end`` (docs/training.md#learning-rate-schedule),
    written out per index."""
    if i < warmup:
        return start + (base - start) * (i / (warmup - 1) if warmup > 1 else 0.0)
    rest = total - warmup
    return end + 0.5 * (base - end) * (1 + math.cos(math.pi * (i - warmup) / rest))


class _Spy:
    """Records the initial network, every batch and the learning rate each step ran with."""

    def __init__(self, monkeypatch):
        self.initial = None
        self.batches = []
        self.lrs = []
        real_build, real_step = job_mod.build_network, TrainingJob.step

        def build(cfg, dinfo):
            model, core = real_build(cfg, dinfo)
            self.initial = copy.deepcopy(core)
            return model, core

        def step(job, batch):
            self.batches.append({k: (v.clone() if torch.is_tensor(v) else v) for k, v in batch.items()})
            self.lrs.append(sorted({g["lr"] for g in job.optimizer.param_groups}))
            return real_step(job, batch)

        monkeypatch.setattr(job_mod, "build_network", build)
        monkeypatch.setattr(TrainingJob, "step", step)


def _golden(initial, batches, lrs, loss_cfg, *, clip, weight_decay):
    """Hand-written training of a copy of ``initial``: autograd gradients, global-norm clip, AdamW."""
    model = copy.deepcopy(initial).train()
    params = [p for p in model.parameters()]
    state = [dict(m=torch.zeros_like(p, dtype=torch.float64), v=torch.zeros_like(p, dtype=torch.float64))
             for p in params]
    norms, tiny = [], [torch.zeros_like(p, dtype=torch.bool) for p in params]
    for t, (batch, lr) in enumerate(zip(batches, lrs), start=1):
        out = model(batch["image"], batch["instance_coord"], batch["instance_imgid"])
        loss = total_loss(out, batch, loss_cfg)["total"]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        used = [(i, g.double()) for i, g in enumerate(grads) if g is not None]
        norm = math.sqrt(sum(float((g * g).sum()) for _, g in used))
        norms.append(norm)
        rms = norm / math.sqrt(sum(g.numel() for _, g in used))
        for i, g in used:  # gradients at float rounding level (a conv bias before BatchNorm is exactly 0 in
            tiny[i] |= g.abs() < 1e-4 * rms  # theory): Adam turns their noise into +-lr steps; not compared
        coef = min(1.0, clip / (norm + 1e-6))
        with torch.no_grad():
            for i, g in used:  # a parameter without a gradient is not touched at all (not even decayed)
                g = g * coef
                s, p = state[i], params[i]
                s["m"].mul_(BETAS[0]).add_((1 - BETAS[0]) * g)
                s["v"].mul_(BETAS[1]).add_((1 - BETAS[1]) * g * g)
                m_hat = s["m"] / (1 - BETAS[0] ** t)
                v_hat = s["v"] / (1 - BETAS[1] ** t)
                new = p.double() * (1 - lr * weight_decay) - lr * m_hat / (v_hat.sqrt() + EPS)
                p.copy_(new.to(p.dtype))
    names = [k for k, _ in model.named_parameters()]
    return model, norms, dict(zip(names, tiny))


# clipping is active (raw norms are far above 0.5), warm-up starts well above zero so that the first step
# moves the weights, and the weight decay is large enough to be seen next to Adam's ~lr-sized steps
WIRING = ("train.epochs=1", "train.max_steps_per_epoch=2", "train.warmup_epochs=1", "train.lr=0.02",
          "train.warmup_start_lr=0.005", "train.weight_decay=0.5", "train.clip_grad=0.5", "train.amp=auto",
          "train.channels_last=false")


@pytest.fixture(scope="module")
def wiring_run(tmp_path_factory, tiny_synth):
    """One real two-step run of the engine and the hand-written golden runs (with / without clip, decay)."""
    from boir_core.config import load_config

    cfg = load_config("tiny", [f"data.root={tiny_synth}", "train.device=cpu", "data.workers=0", *WIRING])
    mp = pytest.MonkeyPatch()
    try:
        spy = _Spy(mp)
        run_dir = tmp_path_factory.mktemp("wiring")
        summary = train(cfg, run_dir, progress=False)
    finally:
        mp.undo()
    final = torch.load(run_dir / "final.pt", weights_only=True)["state_dict"]
    tc = cfg.train
    lrs = [_closed_form_lr(i, 2, 2, tc.lr, tc.warmup_start_lr, tc.min_lr) for i in range(2)]
    golden = {}
    for name, clip, wd in (("configured", tc.clip_grad, tc.weight_decay), ("no_clip", math.inf, tc.weight_decay),
                           ("no_decay", tc.clip_grad, 0.0)):
        golden[name] = _golden(spy.initial, spy.batches, lrs, cfg.loss, clip=clip, weight_decay=wd)
    iters = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return dict(cfg=cfg, spy=spy, summary=summary, final=final, golden=golden, lrs=lrs,
                iters=[r for r in iters if r["type"] == "iter"])


def _max_param_error(golden, final, initial):
    """Largest |engine − golden| over the parameters (elements with float-noise gradients left out) and the
    largest step the engine took."""
    model, _, tiny = golden
    err, step, kept, total = 0.0, 0.0, 0, 0
    init = dict(initial.named_parameters())
    for k, p in model.named_parameters():
        d = (final[k].double() - p.detach().double()).abs()[~tiny[k]]
        err = max(err, float(d.max()) if d.numel() else 0.0)
        kept, total = kept + d.numel(), total + p.numel()
        step = max(step, float((final[k].double() - init[k].detach().double()).abs().max()))
    assert kept > 0.9 * total  # the comparison covers nearly every weight
    return err, step


def test_first_steps_match_hand_written_adamw_with_clip_and_warmup(wiring_run):
    r = wiring_run
    assert len(r["spy"].batches) == 2 and r["summary"].iterations == 2
    # the optimiser ran each step with the closed-form warm-up rate, in every parameter group
    assert r["spy"].lrs == [[pytest.approx(lr, rel=1e-12)] for lr in r["lrs"]]
    model, norms, _ = r["golden"]["configured"]
    # clipping was active in both steps, and the logged norm is the norm before clipping
    assert min(norms) > 4 * r["cfg"].train.clip_grad
    assert [it["grad_norm"] for it in r["iters"]] == pytest.approx(norms, rel=1e-4)
    err, step = _max_param_error(r["golden"]["configured"], r["final"], r["spy"].initial)
    assert step > 0.5 * r["lrs"][1]  # Adam moved the weights by about lr
    assert err < 1e-3 * step, f"engine and hand-written AdamW differ by {err:.3g} (steps {step:.3g})"
    # BatchNorm statistics saw the same batches in the same order
    for k, v in model.state_dict().items():
        if "running_" in k:
            torch.testing.assert_close(r["final"][k], v, rtol=1e-4, atol=1e-5)


def test_gradient_clipping_is_applied(wiring_run):
    """Without clipping the same two steps end elsewhere (the clip factors of the steps differ, so Adam's
    normalisation does not hide them): the engine must match the clipped golden run, not this one."""
    r = wiring_run
    err_clip, step = _max_param_error(r["golden"]["configured"], r["final"], r["spy"].initial)
    err_none, _ = _max_param_error(r["golden"]["no_clip"], r["final"], r["spy"].initial)
    assert err_clip < 1e-3 * step and err_none > 20 * max(err_clip, 1e-7 * step)


def test_weight_decay_is_applied(wiring_run):
    """Decoupled decay shrinks every weight by lr·wd·w per step: the engine matches the decayed golden run
    and not the undecayed one, by about that amount."""
    r = wiring_run
    err_wd, step = _max_param_error(r["golden"]["configured"], r["final"], r["spy"].initial)
    err_none, _ = _max_param_error(r["golden"]["no_decay"], r["final"], r["spy"].initial)
    wmax = max(float(p.detach().abs().max()) for p in r["spy"].initial.parameters())
    assert err_wd < 1e-3 * step
    assert err_none > 0.1 * sum(r["lrs"]) * r["cfg"].train.weight_decay * wmax


def test_lr_of_every_iteration_is_the_closed_form_across_a_resume(tiny_cfg, tmp_path, monkeypatch):
    """3 epochs of 2 iterations (1 warm-up epoch), killed in epoch 2 and resumed: every one of the 6 steps
    ran with the closed-form rate (the resumed run continues the schedule, it does not restart it)."""
    cfg = tiny_cfg.override("train.epochs=3", "train.max_steps_per_epoch=2", "train.warmup_epochs=1",
                            "train.save_every=1", "train.lr=0.004", "train.warmup_start_lr=0.0001",
                            "train.min_lr=0.0002")
    spy = _Spy(monkeypatch)
    with pytest.raises(train_mod.TrainingInterrupted):
        train(cfg, tmp_path / "run", progress=False, hooks=TrainHooks(stop_after_iters=3))
    assert len(spy.lrs) == 3
    spy.lrs = spy.lrs[:2]  # the third step is repeated after the resume (the checkpoint is from epoch 1)
    train(cfg, tmp_path / "run", progress=False)
    tc = cfg.train
    want = [_closed_form_lr(i, 6, 2, tc.lr, tc.warmup_start_lr, tc.min_lr) for i in range(6)]
    assert [v[0] for v in spy.lrs] == pytest.approx(want, rel=1e-12)
    assert all(len(v) == 1 for v in spy.lrs)
    # the logged lr is the rate the optimiser used
    logged = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    by_iter = {x["iter"]: x["lr"] for x in logged if x["type"] == "iter"}  # the repeated step: logged once
    assert [by_iter[i] for i in range(1, 7)] == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("world, batch", [(2, 2), (3, 3)])
def test_ddp_ranks_see_disjoint_shares_that_cover_the_training_set(tiny_cfg, world, batch):
    """Each rank's loader (as ``train`` builds it for that rank) yields its own share of the images; the shares
    are disjoint (up to DistributedSampler's padding to a multiple of the world size) and cover the set,
    every epoch, and the order changes between epochs."""
    cfg = tiny_cfg.override(f"train.batch_size={batch}")
    n = None
    orders = {}
    for epoch in (0, 1):
        seen = []
        for rank in range(world):
            data = job_mod.build_training_data(cfg, DistInfo(rank=rank, world_size=world))
            n = len(data.dataset)
            ids = []
            for b in data.batches(cfg.train.seed, epoch, rank):
                ids += b["image_id"].tolist()
            seen.append(ids)
            orders[(epoch, rank)] = ids
        per_rank = math.ceil(n / world)
        assert all(len(s) == per_rank for s in seen)  # every image of the rank's share is trained on
        flat = [i for s in seen for i in s]
        assert len(set(flat)) == n, "some images are never seen by any rank"
        assert len(flat) - len(set(flat)) == per_rank * world - n, "ranks train on the same images"
    assert any(orders[(0, r)] != orders[(1, r)] for r in range(world)), "the order does not change per epoch"


# ---- one optimisation step (``TrainingJob.step``) on its own: the branches the two-step fp32 run above does not take

def _step_parts(cfg):
    """The job ``train`` steps (network, optimiser, scaler, precision) and its first batch."""
    job = build_job(cfg, DistInfo())
    return job, next(job.batches(0))


def _weights(model):
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _moved(model, before):
    """Whether the optimiser changed a parameter (a forward alone updates BatchNorm's statistics, not these)."""
    return any(not torch.equal(before[k], v) for k, v in model.named_parameters())


def test_step_runs_the_forward_under_the_configured_autocast_and_memory_format(tiny_cfg):
    """train.amp=bf16 and train.channels_last=true: the network sees a channels_last batch under bf16
    autocast even when the process default autocast dtype is another (fp16 here), and the step is taken."""
    cfg = tiny_cfg.override("train.channels_last=true", "train.amp=bf16")
    job, batch = _step_parts(cfg)
    model = job.model
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(
        (torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu"),
         args[0].is_contiguous(memory_format=torch.channels_last))))
    default = torch.get_autocast_dtype("cpu")
    torch.set_autocast_dtype("cpu", torch.float16)
    try:
        before = _weights(model)
        job.loss_generator.manual_seed(0)
        terms, grad_norm, finite = job.step(batch)
    finally:
        torch.set_autocast_dtype("cpu", default)
    assert seen == [(True, torch.bfloat16, True)]
    assert finite and math.isfinite(grad_norm) and math.isfinite(terms["total"])
    assert _moved(model, before)


def test_step_draws_the_instance_subset_from_the_loss_generator(tiny_cfg):
    """With more instances than loss.max_instances the kept subset comes from the seeded loss generator, not
    from the global RNG: the same generator seed gives the same loss whatever the global seed; another
    generator seed gives another loss (so the subset matters here)."""
    cfg = tiny_cfg.override("loss.max_instances=1")
    job, batch = _step_parts(cfg)
    assert batch["instance_coord"].shape[0] > 1
    start = {k: v.clone() for k, v in job.model.state_dict().items()}

    def loss(global_seed, loss_seed):
        job.model.load_state_dict(start)
        torch.manual_seed(global_seed)
        job.loss_generator.manual_seed(loss_seed)
        terms, _, _ = job.step(batch)
        return terms["total"]

    same = {loss(g, 5) for g in (1, 2, 3)}
    assert len(same) == 1
    assert len({loss(1, s) for s in (5, 6, 7, 8)}) > 1


@pytest.mark.parametrize("other_rank_finite", [True, False])
def test_step_is_skipped_on_every_rank_when_any_rank_has_a_non_finite_loss(tiny_cfg, monkeypatch,
                                                                         other_rank_finite):
    """DDP: the ranks agree on skipping through an all-reduce MIN of their 'loss is finite' flags. Here this
    rank's loss is finite; a stand-in all-reduce plays a second rank whose loss is finite or not."""
    job, batch = _step_parts(tiny_cfg)
    job = dataclasses.replace(job, dinfo=DistInfo(world_size=2))  # this rank of two (built as one process)
    model = job.model
    ops = []

    def all_reduce(tensor, op=torch.distributed.ReduceOp.SUM):
        ops.append(op)
        other = torch.tensor(1.0 if other_rank_finite else 0.0)
        combined = {torch.distributed.ReduceOp.MIN: torch.minimum, torch.distributed.ReduceOp.SUM: torch.add,
                    torch.distributed.ReduceOp.MAX: torch.maximum}[op](tensor, other)
        tensor.copy_(combined)

    monkeypatch.setattr(torch.distributed, "all_reduce", all_reduce)
    before = _weights(model)
    job.loss_generator.manual_seed(0)
    terms, grad_norm, finite = job.step(batch)
    assert ops == [torch.distributed.ReduceOp.MIN]
    assert math.isfinite(terms["total"])  # this rank's loss
    changed = _moved(model, before)
    if other_rank_finite:
        assert finite and math.isfinite(grad_norm) and changed
    else:
        assert not finite and math.isnan(grad_norm) and not changed
