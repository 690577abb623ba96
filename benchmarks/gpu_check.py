"""The GPU check: one prepared script for whenever an accelerator is available (one GPU, under 8 minutes).

Usage::

    python benchmarks/gpu_check.py                       # on a CUDA machine: everything below
    python benchmarks/gpu_check.py --out runs/gpu_check/gpu_check.json --budget-s 360
    python benchmarks/gpu_check.py --device cpu --tiny   # CPU smoke run of the same code paths (small nets)

What it runs, in this order (each section is timed and guarded; a failing section is reported, the rest run):

1. the CUDA tests: ``pytest -k "cuda"`` over ``tests/`` (every test with "cuda" in its name);
2. training steps of BoIR W32 at 512 px and W48 at 640 px, batch 20, fp16 autocast + GradScaler and
   channels_last, the engine's own step (forward, every loss, backward, clipping, AdamW) on a real batch of
   SynthCrowd (generated into a temporary folder): images/s and peak memory (``max_memory_allocated``), without
   and then with ``torch.compile``;
3. Table 5's inference latency, batch 1 with flip test, fp32 and fp16 autocast: BoIR W32 / W48 and CID W32,
   network and decoding timed separately (random weights: decoding cost depends on how many centers pass);
4. one training step under DistributedDataParallel in a one-process NCCL group (gloo on the CPU).

It prints a table and writes a JSON (``--out``). Without CUDA (and without ``--device cpu``) it says so and
exits 0 at once. ``--budget-s`` (default 360 s, so that a compile started just before it still ends within
8 minutes) skips the sections left once it is spent (the compiled training steps run last: compiling HRNet
takes a minute or more per network) and says so.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--tiny", action="store_true", help="small networks, 128 px, batch 2 (a smoke run of the paths)")
    ap.add_argument("--out", default=str(REPO / "runs" / "gpu_check" / "gpu_check.json"))
    ap.add_argument("--budget-s", type=float, default=360.0,
                    help="skip what is left after this many seconds (the last section may run ~2 min past it)")
    ap.add_argument("--steps", type=int, default=0, help="timed training steps per mode (default 10; tiny 2)")
    ap.add_argument("--warmup", type=int, default=0, help="untimed steps per mode (default 3; tiny 1)")
    ap.add_argument("--repeats", type=int, default=0, help="timed latency runs (default 20; tiny 2)")
    ap.add_argument("--batch", type=int, default=0, help="training images per step (default 20; tiny 2)")
    ap.add_argument("--skip", default="", help="comma-separated sections to skip: tests,train,compile,latency,ddp")
    ap.add_argument("--tests", action="store_true", help="run the CUDA tests on the CPU too (they skip there)")
    return ap.parse_args(argv)


class Check:
    """Runs sections within a time budget and collects their records and the printed table rows."""

    def __init__(self, budget_s: float):
        self.t0 = time.perf_counter()
        self.budget = budget_s
        self.sections: dict[str, dict] = {}
        self.rows: list[tuple[str, str]] = []

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def run(self, name: str, fn, *args, need_s: float = 0.0, **kw):
        if self.left() < need_s:
            self.sections[name] = {"status": "skipped", "why": f"time budget ({self.left():.0f} s left)"}
            self.rows.append((name, f"skipped: time budget ({self.left():.0f} s left, needs ~{need_s:.0f} s)"))
            print(f"[gpu_check] {name}: skipped (time budget)", flush=True)
            return None
        print(f"[gpu_check] {name} ...", flush=True)
        t = time.perf_counter()
        try:
            rec = fn(*args, **kw)
            rec = dict(rec or {})
            rec.setdefault("status", "ok")
        except Exception as e:  # report and go on with the next section
            rec = {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
            self.rows.append((name, f"FAILED: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
            print(rec["traceback"], file=sys.stderr, flush=True)
        rec["seconds"] = round(time.perf_counter() - t, 2)
        self.sections[name] = rec
        return rec


# ---- sections ---------------------------------------------------------------------------------------

def cuda_tests(tests_on_cpu: bool, device: str) -> dict:
    if device != "cuda" and not tests_on_cpu:
        return {"status": "skipped", "why": "CPU run (use --tests to collect and run them anyway; they skip)"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-k", "cuda", "-p", "no:cacheprovider", str(REPO / "tests")]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.setdefault("HF_HUB_OFFLINE", "1")
    p = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    tail = (p.stdout + p.stderr).strip().splitlines()[-1:] or [""]
    return {"status": "ok" if p.returncode in (0, 5) else "failed", "returncode": p.returncode,
            "summary": tail[0], "output_tail": (p.stdout + p.stderr)[-4000:]}


def _synth_batch(cfg, batch: int, workdir: Path):
    from boir_core.data import KeypointDataset, collate_train
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = workdir / "synthcrowd"
    if not (root / "annotations").is_dir():
        make_synthcrowd(root, SynthCrowdSpec(num_train=max(batch, 2), num_val=1, seed=5, max_people=6))
    cfg = cfg.override("data.dataset=synthcrowd", f"data.root={root}", "data.workers=0")
    ds = KeypointDataset.from_config(cfg, split="train", train=True)
    return collate_train([ds[i % len(ds)] for i in range(batch)])


def _train_cfg(name: str, tiny: bool, device: str, batch: int, compile_: bool):
    from boir_core.config import load_config

    ov = [f"train.device={device}", f"train.batch_size={batch}", "model.pretrained=none",
          "train.channels_last=true", f"train.compile={str(compile_).lower()}",
          "train.amp=" + ("fp16" if device == "cuda" else "bf16")]
    if tiny:
        ov += ["model.backbone=hrnet_w18_small", "data.input_size=128", "data.output_size=32",
               "model.neck_channels=32", "model.neck_middle_channels=16", "model.head_channels=16",
               "model.emb_dim=8", "model.inst_channels=16"]
    return load_config(name, ov)


def train_steps(name: str, tiny: bool, device_name: str, batch: int, steps: int, warmup: int, compile_: bool,
                workdir: Path) -> dict:
    import torch

    from boir_core.engine.distributed import DistInfo
    from boir_core.engine.training.budget import step_seconds_of
    from boir_core.engine.training.job import TrainingJob, move_batch
    from boir_core.engine.training.optimization import Optimization
    from boir_core.engine.training.precision import Precision
    from boir_core.model import build_model, count_parameters

    cfg = _train_cfg(name, tiny, device_name, batch, compile_)
    device = torch.device(device_name)
    b = move_batch(_synth_batch(cfg, batch, workdir), device)
    torch.manual_seed(0)
    core = build_model(cfg, train=True).to(device).to(memory_format=torch.channels_last)
    model = torch.compile(core) if compile_ else core
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    precision = Precision.of(cfg.train.amp, device)
    dtype = precision.dtype
    scaler = torch.amp.GradScaler(device.type, init_scale=16384.0, enabled=precision.grad_scaler)
    job = TrainingJob(cfg, DistInfo(device=device), None, model, core,  # the engine's step, no data set
                      Optimization(optimizer, scaler, precision, iters_per_epoch=1))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    times, first = [], None
    for i in range(warmup + steps):
        sync()
        t = time.perf_counter()
        terms, _, finite = job.step(b)
        sync()
        dt = time.perf_counter() - t
        if i == 0:
            first = dt
        if i >= warmup:
            times.append(dt)
    step = step_seconds_of(times, skip=0)  # the kit's seconds per step: the mean (engine.training.budget)
    peak = int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else None
    if peak is None:
        from boir_core.engine.jobs.dryrun import peak_rss_bytes

        peak = peak_rss_bytes()
    return {"config": cfg.name, "backbone": cfg.model.backbone, "input_size": cfg.data.input_size, "batch": batch,
            "amp": str(dtype).replace("torch.", ""), "channels_last": True, "compile": compile_,
            "step_seconds": step, "images_per_s": batch / step, "first_step_seconds": first,
            "peak_memory_bytes": peak, "peak_memory_kind": "max_memory_allocated" if device.type == "cuda"
            else "peak RSS", "params": count_parameters(core)["total"], "finite": bool(finite),
            "last_loss": terms.get("total")}


def latency(name: str, tiny: bool, device_name: str, repeats: int, warmup: int, fp16: bool) -> dict:
    import numpy as np
    import torch

    from boir_core.config import load_config
    from boir_core.engine.inference.predictor import Predictor
    from boir_core.model import build_model, count_parameters

    ov = [f"test.device={device_name}"]
    if tiny:
        ov += ["model.backbone=hrnet_w18_small", "data.input_size=128", "data.output_size=32"]
    cfg = load_config(name, ov)
    device = torch.device(device_name)
    torch.manual_seed(0)
    model = build_model(cfg, train=False).to(device).eval()
    predictor = Predictor(cfg, model=model, device=device)  # test.backend unset: exact, the plain network
    size = cfg.data.input_size
    image = torch.randn(3, size, size, generator=torch.Generator().manual_seed(0))
    meta = {"trans_inv": np.array([[1.0, 0, 0], [0, 1.0, 0]]), "image_id": 0}
    ctx = (torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16)
           if fp16 else contextlib.nullcontext())
    net, dec, people = [], [], []
    with torch.no_grad(), ctx:
        for i in range(warmup + repeats):
            r = predictor(image, meta)
            if i >= warmup:
                net.append(1000 * r.time_network)
                dec.append(1000 * r.time_decode)
                people.append(len(r.poses))
    return {"config": cfg.name, "arch": cfg.model.arch, "backbone": cfg.model.backbone, "input_size": size,
            "precision": ("fp16" if device.type == "cuda" else "bf16") if fp16 else "fp32", "flip_test": True,
            "batch": 1, "network_ms": float(np.median(net)), "decode_ms": float(np.median(dec)),
            "total_ms": float(np.median(np.add(net, dec))), "people_decoded": int(np.median(people)),
            "params_inference": count_parameters(model)["inference"]}


def ddp_step(tiny: bool, device_name: str, batch: int, workdir: Path) -> dict:
    import socket

    import torch
    import torch.distributed as dist

    from boir_core.engine.distributed import DistInfo
    from boir_core.engine.training.job import TrainingJob, move_batch
    from boir_core.engine.training.optimization import Optimization
    from boir_core.engine.training.precision import Precision
    from boir_core.model import build_model

    backend = "nccl" if device_name == "cuda" else "gloo"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    device = torch.device("cuda:0" if device_name == "cuda" else "cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    try:
        cfg = _train_cfg("coco_w32", tiny, device_name, batch, False)
        b = move_batch(_synth_batch(cfg, batch, workdir), device)
        core = build_model(cfg, train=True).to(device).to(memory_format=torch.channels_last)
        model = torch.nn.parallel.DistributedDataParallel(core, device_ids=[0] if device.type == "cuda" else None)
        optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
        precision = Precision.of(cfg.train.amp, device)
        scaler = torch.amp.GradScaler(device.type, enabled=precision.grad_scaler)
        dinfo = DistInfo(rank=0, world_size=1, local_rank=0, device=device)
        job = TrainingJob(cfg, dinfo, None, model, core, Optimization(optimizer, scaler, precision, iters_per_epoch=1))
        before = next(core.parameters()).detach().clone()
        t = time.perf_counter()
        terms, grad_norm, finite = job.step(b)
        if device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t
        changed = not torch.equal(before, next(core.parameters()).detach())
        return {"backend": backend, "world_size": dist.get_world_size(), "step_seconds": dt, "finite": bool(finite),
                "grad_norm": grad_norm, "weights_changed": changed, "loss": terms.get("total"),
                "status": "ok" if finite and changed else "failed"}
    finally:
        dist.destroy_process_group()


# ---- main -------------------------------------------------------------------------------------------

def _clean(obj):
    """JSON-safe: non-finite floats become None (the kit's JSON writer refuses NaN)."""
    import math

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def _gib(n) -> str:
    return "-" if n is None else f"{n / 2**30:.2f} GiB"


def main(argv=None) -> int:
    args = _parse(argv)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("[gpu_check] no CUDA device on this machine: nothing to check. (A CPU smoke run of the same code "
              "paths: python benchmarks/gpu_check.py --device cpu --tiny)")
        return 0
    sys.path.insert(0, str(REPO))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    tiny = args.tiny
    batch = args.batch or (2 if tiny else 20)
    steps = args.steps or (2 if tiny else 10)
    warmup = args.warmup or (1 if tiny else 3)
    repeats = args.repeats or (2 if tiny else 20)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if args.device == "cuda":
        torch.backends.cudnn.benchmark = True
        where = f"{torch.cuda.get_device_name(0)}, {torch.cuda.get_device_properties(0).total_memory / 2**30:.0f} GiB"
    else:
        from boir_core.engine.jobs.dryrun import _cpu_name

        where = f"CPU: {_cpu_name()}, {torch.get_num_threads()} threads"
    print(f"[gpu_check] {where}; torch {torch.__version__} (CUDA {torch.version.cuda}); budget {args.budget_s:.0f} s"
          + ("; TINY smoke mode" if tiny else ""), flush=True)
    chk = Check(args.budget_s)
    work = Path(tempfile.mkdtemp(prefix="boir_gpu_check_"))
    nets = [("coco_w32", "W32"), ("coco_w48", "W48")]

    if "tests" not in skip:
        rec = chk.run("cuda tests", cuda_tests, args.tests, args.device, need_s=30)
        if rec and rec.get("status") in ("ok", "failed") and "summary" in rec:
            chk.rows.append(("cuda tests", rec["summary"]))
        elif rec and rec.get("status") == "skipped":
            chk.rows.append(("cuda tests", "skipped: " + rec["why"]))
    if "train" not in skip:
        for name, label in nets:
            rec = chk.run(f"train {label}", train_steps, name, tiny, args.device, batch, steps, warmup, False, work,
                          need_s=30)
            if rec and rec.get("status") == "ok":
                chk.rows.append((f"train {label} {rec['input_size']} px b{batch} {rec['amp']}+NHWC",
                                 f"{rec['images_per_s']:.1f} img/s, {rec['step_seconds'] * 1000:.0f} ms/step, peak "
                                 f"{_gib(rec['peak_memory_bytes'])}"))
    if "latency" not in skip:
        for name, label in [*nets, ("cid_coco_w32", "CID W32")]:
            for fp16 in (False, True):
                prec = "fp16" if fp16 else "fp32"
                rec = chk.run(f"latency {label} {prec}", latency, name, tiny, args.device, repeats, 3, fp16,
                              need_s=10)
                if rec and rec.get("status") == "ok":
                    chk.rows.append((f"Table 5 {label} {rec['input_size']} px flip {rec['precision']}",
                                     f"network {rec['network_ms']:.1f} ms + decoding {rec['decode_ms']:.1f} ms "
                                     f"({rec['people_decoded']} people)"))
    if "ddp" not in skip:
        rec = chk.run("ddp step", ddp_step, tiny, args.device, min(batch, 4), work, need_s=20)
        if rec and rec.get("status") in ("ok", "failed") and "backend" in rec:
            chk.rows.append(("DDP step (1 process)", f"{rec['backend']}: {rec['status']}, {rec['step_seconds']:.2f} s, "
                                                     f"weights changed: {rec['weights_changed']}"))
    if "compile" not in skip:
        if args.device != "cuda":
            chk.sections["train compiled"] = {"status": "skipped", "why": "torch.compile is timed on CUDA only"}
            chk.rows.append(("train compiled", "skipped on the CPU"))
        else:
            for name, label in nets:
                rec = chk.run(f"train {label} compiled", train_steps, name, tiny, args.device, batch, steps, warmup,
                              True, work, need_s=120)
                if rec and rec.get("status") == "ok":
                    chk.rows.append((f"train {label} {rec['input_size']} px b{batch} {rec['amp']}+NHWC compiled",
                                     f"{rec['images_per_s']:.1f} img/s, {rec['step_seconds'] * 1000:.0f} ms/step "
                                     f"(first step incl. compile {rec['first_step_seconds']:.0f} s), peak "
                                     f"{_gib(rec['peak_memory_bytes'])}"))

    total = time.perf_counter() - chk.t0
    width = max(len(k) for k, _ in chk.rows) if chk.rows else 10
    print(f"\n# GPU check on {where} ({total:.0f} s)")
    for k, v in chk.rows:
        print(f"{k:<{width}}  {v}")
    failed = [k for k, r in chk.sections.items() if r.get("status") == "failed"]
    out = {"device": where, "torch": torch.__version__, "cuda": torch.version.cuda, "tiny": tiny,
           "seconds": total, "sections": chk.sections, "failed": failed}
    from boir_core.io import atomic_write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(args.out, _clean(out), indent=2)
    print(f"[gpu_check] JSON: {path}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
