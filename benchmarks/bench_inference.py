"""Inference time per image of every backend and variant, against torch eager, in one run
(docs/inference.md#decoding-steps).

    python benchmarks/bench_inference.py [--backbone hrnet_w32] [--size 512] [--images 3] [--threads N]
                                         [--variants eager,torch,onnxruntime,...] [--no-flip] [--json F]
    python benchmarks/bench_inference.py --device cuda --backbone hrnet_w48      # the GPU table

The same images (the real COCO / CrowdPose / OCHuman fixtures when present, else random images of the
same sizes) and the same seeded weights (:func:`boir_core.model.random_weights.seeded_trained_like_`:
trained-like activations, about 30 proposals per image) go through every variant; the variants take turns
image by image, so a change in machine load hits all of them alike. For each it prints the network and
decoding time per image (decoding: peaks, flip average, refinement, OKS-NMS, as openpifpaf's t_dec), the
ratio to torch eager, and the largest keypoint difference from torch eager's poses in image pixels.

CPU variants: ``eager`` (the plain model, the baseline), then each speed-up alone (``inference_mode``,
``fold_bn``, ``fast_instance``, ``channels_last``), ``torch`` (all of them: what ``test.backend=torch``
runs on a CPU), ``onnxruntime``, ``openvino`` (skipped when not installed).
CUDA variants (``--device cuda``): {fp32, fp16} × {eager, compile, cudagraphs}, batch 1 with flip, as
Table 5 measures. To see what a plain AVX2 CPU does on an AVX-512 / AMX machine, run under
``ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2``: PyTorch and oneDNN obey these, OpenVINO obeys
``ONEDNN_MAX_CPU_ISA`` for its oneDNN kernels and ``OV_CPU_MAX_ISA`` for its own (set here to the same value;
``--stages`` shows its kernel names, e.g. ``brgconv_avx2_f32``), ONNX Runtime's MLAS kernels obey nothing
and pick the widest instruction set the CPU has: its figures in such a run are marked and are not an AVX2
CPU's. Not a test: it prints figures.

``--deploy`` times the torch-free deployment runtime instead (docs/inference.md#deployment-folder): per image the
network (dense graph, instance graph, ONNX Runtime) and the numpy decoding, beside the torch decoder's decoding,
then how both grow with the number of people (``--people 1,5,10,20,30,60``: ``test.max_proposals`` with the center
threshold at 0, so every image has that many proposals).

``--stages`` then profiles one image stage by stage (stem, layer1, stage2-4 with their transitions, the branch
concat, neck, center head, instance head, decoding) for torch eager and the fastest variant (or the
variants named: ``--stages eager,torch,openvino``): forward hooks for PyTorch, ONNX Runtime's trace and
OpenVINO's per-node counters for the graphs (which also name the kernels, i.e. the instruction set used).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if os.environ.get("ONEDNN_MAX_CPU_ISA"):  # OpenVINO's own kernels read their own cap (oneDNN's only its kernels)
    os.environ.setdefault("OV_CPU_MAX_ISA", os.environ["ONEDNN_MAX_CPU_ISA"])
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from boir_core.deploy.decode_np import network_views  # noqa: E402
from boir_core.engine.inference.backends import Runner  # noqa: E402
from boir_core.engine.inference.decode import DecodeSettings, decode  # noqa: E402

CPU_VARIANTS = ("eager", "inference_mode", "fold_bn", "fast_instance", "channels_last", "torch",
                "onnxruntime", "openvino", "onnxruntime_int8")
#: variants that need calibration inputs (network inputs [V, 3, H', W']) to be built
CALIBRATED = ("onnxruntime_int8",)
#: variants whose kernels no environment variable caps to a smaller instruction set (ONNX Runtime's MLAS
#: dispatches on cpuid alone)
UNCAPPED = ("onnxruntime", "onnxruntime_int8")
CUDA_VARIANTS = tuple(f"{p}-{m}" for p in ("fp32", "fp16") for m in ("eager", "compile", "cudagraphs"))
COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
COCO_SIGMAS = [0.026, 0.025, 0.025, 0.035, 0.035, 0.079, 0.079, 0.072, 0.072, 0.062, 0.062,
               0.107, 0.107, 0.087, 0.087, 0.089, 0.089]
#: sizes of the real fixtures, used with random pixels when the fixtures are absent
FALLBACK_SIZES = [(640, 425), (427, 640), (1920, 1080)]


def load_images(count: int, size: int, seed: int = 0):
    """(name, canvas [3, H', W'] float32, trans_inv) for ``count`` images resized as for evaluation."""
    import cv2

    from boir_core.data.transforms import eval_resize, normalize_image, warp

    root = Path(os.environ.get("BOIR_REAL_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"
                               / "real"))
    files = sorted(p for d in ("coco", "crowdpose", "ochuman") for p in (root / d).glob("*.jpg"))
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        if files:
            f = files[i * max(1, len(files) // count) % len(files)]
            img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
            name = f"{f.parent.name}/{f.name}"
        else:
            w, h = FALLBACK_SIZES[i % len(FALLBACK_SIZES)]
            img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            name = f"random {w}x{h}"
        h, w = img.shape[:2]
        tr = eval_resize(w, h, size)
        out.append((name, torch.from_numpy(normalize_image(warp(img, tr.matrix, tr.canvas))), tr.trans_inv))
    return out


def build_model(backbone: str, seed: int, device: str, **model_kw):
    from boir_core.model import CID, BoIR
    from boir_core.model.random_weights import seeded_trained_like_

    cls = CID if model_kw.pop("arch", "boir") == "cid" else BoIR
    model = cls(17, backbone=backbone, train_heads=False, **model_kw)
    return seeded_trained_like_(model, seed=seed).to(device)


def calibration_images(timed: list, size: int, flip: bool, count: int = 4, seed: int = 0) -> list:
    """Network inputs to calibrate INT8 on: real fixtures that are not among the ``timed`` images (else random
    pixels), resized as for testing and mirrored beside themselves with ``flip``."""
    names = {t[0] for t in timed}
    pool = [it for it in load_images(count + len(timed), size, seed + 1) if it[0] not in names][:count]
    return [network_views(img.numpy(), flip) for _, img, _ in pool]


def make_variant(name: str, model, threads: int, calibration=None):
    """The runner of one variant name (``eager``: test.backend=exact, the plain network in fp32;
    ``onnxruntime_int8`` needs ``calibration``, network inputs to read its activation ranges from)."""
    from boir_core.engine.inference.backends import RunnerOptions, TorchRunner, TorchSettings, make_runner

    plain = TorchSettings.plain()
    if name == "eager":  # what test.backend=exact runs
        return make_runner("exact", model)
    if name == "inference_mode":
        return TorchRunner(model, plain)
    if name == "fold_bn":
        return TorchRunner(model, replace(plain, fold_bn=True))
    if name == "fast_instance":
        return TorchRunner(model, replace(plain, fast_instance=True))
    if name == "channels_last":
        return TorchRunner(model, replace(plain, channels_last=True))
    if name == "torch":  # what test.backend=torch runs
        return TorchRunner(model)
    if name in ("onnxruntime", "openvino"):
        return make_runner(name, model, options=RunnerOptions(threads=threads))
    if name == "onnxruntime_int8":
        return make_runner(name, model, options=RunnerOptions(threads=threads, calibration=calibration))
    if name in CUDA_VARIANTS:
        prec, mode = name.split("-")
        return TorchRunner(model, TorchSettings(half=prec == "fp16", mode=mode))
    raise ValueError(f"unknown variant {name!r}; choose from {list(CPU_VARIANTS + CUDA_VARIANTS)}")


def cpu_report(threads: int) -> dict:
    info = {"threads": threads, "load_average": os.getloadavg(), "torch": torch.__version__}
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
        model = next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")).split(":", 1)[1].strip()
        info["cpu"] = model
        info["isa_flags"] = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16")
                             if f in flags.split()]
    except (OSError, StopIteration):
        pass
    info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    info["ATEN_CPU_CAPABILITY"] = os.environ.get("ATEN_CPU_CAPABILITY")
    info["ONEDNN_MAX_CPU_ISA"] = os.environ.get("ONEDNN_MAX_CPU_ISA")
    info["OV_CPU_MAX_ISA"] = os.environ.get("OV_CPU_MAX_ISA")
    info["onnxruntime_note"] = ("ONNX Runtime's MLAS kernels pick the widest ISA the CPU has (AVX-512 here if "
                                "present) and ignore ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA")
    return info


def isa_capped() -> bool:
    """Whether this run emulates a smaller CPU (ATEN_CPU_CAPABILITY / ONEDNN_MAX_CPU_ISA set)."""
    return bool(os.environ.get("ATEN_CPU_CAPABILITY") or os.environ.get("ONEDNN_MAX_CPU_ISA"))


def matched_displacements(ref: list, out: list) -> list[float]:
    """For each pose of ``ref``: the mean keypoint distance (image pixels) to its nearest pose of ``out`` (by
    that distance; inf when ``out`` is empty). Tells how far poses moved when a path finds other people too."""
    if not ref:
        return []
    if not out:
        return [float("inf")] * len(ref)
    a = np.array([p["keypoints"] for p in ref], np.float64).reshape(len(ref), -1, 3)[..., :2]
    b = np.array([p["keypoints"] for p in out], np.float64).reshape(len(out), -1, 3)[..., :2]
    dist = np.linalg.norm(a[:, None] - b[None], axis=-1).mean(-1)  # [len(ref), len(out)]
    return dist.min(1).tolist()


def max_pose_diff(ref: list, out: list) -> float:
    """Largest |Δx|, |Δy| in image pixels between two pose lists (inf if the people differ)."""
    if len(ref) != len(out):
        return float("inf")
    if not ref:
        return 0.0
    a = np.array([p["keypoints"] for p in ref]).reshape(len(ref), -1, 3)[..., :2]
    b = np.array([p["keypoints"] for p in out]).reshape(len(out), -1, 3)[..., :2]
    return float(np.abs(a - b).max())


def run(variants, images, model, *, flip: bool, threads: int, repeats: int = 1, warmup: bool = True,
        log=print, calibration=None) -> dict:
    settings = DecodeSettings(flip_test=flip, flip_index=COCO_FLIP, oks_sigmas=COCO_SIGMAS)
    built, build_s = {}, {}
    for v in variants:
        t0 = time.perf_counter()
        try:
            built[v] = make_variant(v, model, threads, calibration)
        except ImportError as e:
            log(f"  {v}: skipped ({e})")
            continue
        build_s[v] = time.perf_counter() - t0
    names = list(built)
    if warmup:  # one untimed pass per variant on the smallest image (allocators, ONNX Runtime's first run)
        small = min(images, key=lambda it: it[1].numel())
        for v in names:
            decode(built[v], small[1], {"trans_inv": small[2]}, settings)
    times = {v: {"network": [], "decode": []} for v in names}
    poses = {v: [] for v in names}
    for i, (name, img, inv) in enumerate(images):
        order = names[i % len(names):] + names[:i % len(names)]  # rotate who goes first
        for v in order:
            for r in range(repeats):
                res = decode(built[v], img, {"trans_inv": inv, "image_id": i}, settings)
                times[v]["network"].append(res.time_network)
                times[v]["decode"].append(res.time_decode)
            poses[v].append(res.poses)
        log(f"  image {i + 1}/{len(images)} {name} {tuple(img.shape)}, load {os.getloadavg()[0]:.1f}: " + ", ".join(
            f"{v} {times[v]['network'][-1] + times[v]['decode'][-1]:.2f}s" for v in names))
    base = names[0]
    table = {}
    for v in names:
        net = statistics.mean(times[v]["network"])
        dec = statistics.mean(times[v]["decode"])
        tot_ratio = [(a + b) / (c + d) for a, b, c, d in zip(times[v]["network"], times[v]["decode"],
                                                             times[base]["network"], times[base]["decode"])]
        table[v] = {"network_s": net, "decode_s": dec, "total_s": net + dec,
                    "ratio_total": (net + dec) / (statistics.mean(times[base]["network"])
                                                 + statistics.mean(times[base]["decode"])),
                    "ratio_network": net / statistics.mean(times[base]["network"]),
                    "ratio_total_per_image_median": statistics.median(tot_ratio),
                    "max_keypoint_diff_px": max(max_pose_diff(a, b) for a, b in zip(poses[base], poses[v])),
                    "poses": sum(len(p) for p in poses[v]), "build_s": build_s[v],
                    "what": getattr(built[v], "variant", "plain model"),
                    "obeys_isa_cap": not (isa_capped() and v in UNCAPPED)}
    return table


# ---- per-stage profile ------------------------------------------------------------------------------------

STAGES = ("stem", "layer1", "stage2", "stage3", "stage4", "branch concat", "neck", "center head", "other network",
          "instance head", "decoding")
NETWORK_STAGES = STAGES[:8]


def stage_of(name: str) -> str | None:
    """The stage a module path (``backbone.stage2.0``) or an ONNX / OpenVINO node name
    (``/backbone/stage2/stage2.0/.../Conv``) belongs to; None when it names no stage."""
    t = [x for x in re.split(r"[/.]", name) if x]
    while t and t[0] in ("model", "multihead"):
        t = t[1:]
    if not t:
        return None
    if t[0] == "backbone":
        if len(t) == 1:
            return None
        x = t[1]
        if x in ("conv1", "bn1", "act1", "conv2", "bn2", "act2"):
            return "stem"
        if x == "layer1":
            return "layer1"
        for k in (2, 3, 4):
            if x in (f"transition{k - 1}", f"stage{k}"):
                return f"stage{k}"
        return "branch concat"  # the upsampling and concatenation of the four branches
    if t[0] == "neck":
        return "neck"
    if t[0] in ("center_head", "iia"):
        return "center head"
    if t[0] in ("kpt_head", "gfd"):
        return "instance head"
    return None


@contextmanager
def torch_stage_hooks(module, acc: dict):
    """Forward hooks adding each stage's wall time to ``acc`` (and the whole backbone to ``acc['_backbone']``).
    The instance head is left to the call timer (the fused head calls its parts directly)."""
    import torch.nn as nn

    handles = []

    def hook(mod, stage):
        def pre(m, args):
            m._bench_t0 = time.perf_counter()

        def post(m, args, out):
            acc[stage] += time.perf_counter() - m._bench_t0

        handles.extend([mod.register_forward_pre_hook(pre), mod.register_forward_hook(post)])

    def visit(mod, name, parent):
        st = stage_of(name) if name else None
        if st == "instance head":
            return
        if st is not None and st != parent:
            for c in (mod.children() if isinstance(mod, (nn.ModuleList, nn.ModuleDict, nn.Sequential)) else [mod]):
                hook(c, st)
            return
        for cn, c in mod.named_children():
            visit(c, f"{name}.{cn}" if name else cn, st)

    visit(module, "", None)
    if hasattr(module, "backbone"):
        hook(module.backbone, "_backbone")
    try:
        yield acc
    finally:
        for h in handles:
            h.remove()


@contextmanager
def timed_call(obj, method: str, acc: dict, key: str):
    """Time every call of ``obj.method`` into ``acc[key]`` (an instance attribute, removed afterwards)."""
    inner = getattr(obj, method)

    def wrapper(*a, **k):
        t0 = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            acc[key] += time.perf_counter() - t0

    setattr(obj, method, wrapper)
    try:
        yield
    finally:
        delattr(obj, method)


def profile_stages(variant: str, model, image, inv, *, flip: bool, threads: int) -> dict:
    """Seconds per stage of one decode of ``image`` by ``variant`` (after one untimed decode)."""
    from boir_core.engine.inference.backends import OnnxRuntimeRunner, OpenVinoRunner, RunnerOptions, make_runner

    settings = DecodeSettings(flip_test=flip, flip_index=COCO_FLIP, oks_sigmas=COCO_SIGMAS)
    if variant in ("onnxruntime", "openvino"):
        cls = OnnxRuntimeRunner if variant == "onnxruntime" else OpenVinoRunner
        net = cls(model, threads=threads, profiling=True)
    elif variant in CALIBRATED:
        options = RunnerOptions(threads=threads, profiling=True,
                                calibration=calibration_images([], min(image.shape[-2:]), flip))
        net = make_runner(variant, model, options=options)
    else:
        net = make_variant(variant, model, threads)
    decode(net, image, {"trans_inv": inv}, settings)  # warm-up
    acc: dict = defaultdict(float)
    module = model if net is model else getattr(net, "model", None)
    inst_method = "instance_heatmaps" if net is model else "instances"
    with timed_call(net, inst_method, acc, "instance head"):
        if module is not None:
            with torch_stage_hooks(module, acc):
                res = decode(net, image, {"trans_inv": inv}, settings)
        else:
            res = decode(net, image, {"trans_inv": inv}, settings)
    out = {"network_s": res.time_network, "decode_s": res.time_decode, "kernels": {}}
    if module is None:  # ONNX Runtime / OpenVINO: their per-node times of the dense graph
        kernels: dict = defaultdict(float)
        for node, (sec, kernel) in net.layer_times("dense").items():
            acc[stage_of(node) or "other network"] += sec
            kernels[kernel] += sec
        out["kernels"] = dict(sorted(kernels.items(), key=lambda kv: -kv[1]))
    elif "_backbone" in acc:
        acc["branch concat"] += max(0.0, acc.pop("_backbone") - sum(acc[s] for s in NETWORK_STAGES[:5]))
    # the rest of the network time: flip-back, layout copies, unnamed graph nodes and the graphs' overhead
    acc["other network"] = max(0.0, res.time_network - sum(acc[s] for s in NETWORK_STAGES) - acc["instance head"])
    acc["decoding"] = res.time_decode
    out["stages"] = {s: acc[s] for s in STAGES}
    out["what"] = getattr(net, "variant", "plain model")
    return out


def format_stages(profiles: dict, image: str) -> str:
    names = list(profiles)
    lines = [f"per-stage profile of one image ({image}), seconds and share of the total:",
             f"{'stage':<15}" + "".join(f"{n:>22}" for n in names)
             + ("".join(f"{n + '/' + names[0]:>22}" for n in names[1:]) if len(names) > 1 else "")]
    totals = {n: sum(p["stages"].values()) for n, p in profiles.items()}
    for s in STAGES + ("total",):
        vals = {n: (totals[n] if s == "total" else p["stages"][s]) for n, p in profiles.items()}
        row = f"{s:<15}" + "".join(f"{vals[n]:>13.3f} ({100 * vals[n] / max(totals[n], 1e-12):4.1f}%)" for n in names)
        base = vals[names[0]]  # no ratio to a stage the baseline barely has (eager's flip-back is decoding)
        row += "".join(f"{vals[n] / base:>22.2f}" if base >= 0.01 * totals[names[0]] else f"{'-':>22}"
                       for n in names[1:])
        lines.append(row)
    for n, p in profiles.items():
        if p["kernels"]:
            top = ", ".join(f"{k or '?'} {v:.3f}s" for k, v in list(p["kernels"].items())[:6])
            lines.append(f"{n} kernels (dense graph, by time): {top}")
    lines.append("(other network: flip-back, layout copies, graph overhead; the stage times of the graphs are "
                 "their own per-node timers)")
    return "\n".join(lines)


def format_table(table: dict, baseline: str) -> str:
    lines = [f"{'variant':<16}{'network s':>11}{'decode s':>10}{'total s':>9}{'ratio':>8}{'ratio(net)':>11}"
             f"{'max Δ px':>10}  what"]
    for v, r in table.items():
        lines.append(f"{v:<16}{r['network_s']:>11.3f}{r['decode_s']:>10.3f}{r['total_s']:>9.3f}"
                     f"{r['ratio_total']:>8.2f}{r['ratio_network']:>11.2f}{r['max_keypoint_diff_px']:>10.1e}  "
                     f"{r['what']}" + ("" if r.get("obeys_isa_cap", True) else "  [ignores the ISA cap]"))
    lines.append(f"(per image, mean over images and repeats; ratios against {baseline})")
    if not all(r.get("obeys_isa_cap", True) for r in table.values()):
        lines.append("[ignores the ISA cap]: this library ran its widest kernels (AVX-512 on this CPU), not the "
                     "capped instruction set: not a figure for the emulated CPU")
    return "\n".join(lines)


# ---- the torch-free deployment runtime (boir_core.deploy) -------------------------------------------------------

class _TimedNetwork:
    """A decode_np network that adds each call's seconds to ``times['dense']`` / ``times['instance']`` and keeps
    its last outputs (:class:`_Replay` hands them to the torch decoder). ``dense``: (images, outputs) already
    computed, returned for those images without running the graph again."""

    def __init__(self, net, dense=None):
        self.net = net
        self.times = {"dense": 0.0, "instance": 0.0}
        self.last: dict = {} if dense is None else {"dense": dense}

    def dense(self, images):
        x, out = self.last.get("dense", (None, None))
        if x is not None and x.shape == images.shape and np.array_equal(x, images):
            return out
        t0 = time.perf_counter()
        out = self.net.dense(images)
        self.times["dense"] += time.perf_counter() - t0
        self.last["dense"] = (images, out)
        return out

    def instances(self, features, coords):
        t0 = time.perf_counter()
        out = self.net.instances(features, coords)
        self.times["instance"] += time.perf_counter() - t0
        self.last["instance"] = (coords, out)
        return out


class _Replay(Runner):
    """A backend runner for the torch decoder that answers with the network outputs the numpy decoder just got
    (the same image, the same centers), so the torch decoder's own time is measured without a second network
    pass; other inputs go to the network."""

    name, variant, device, threads = "onnxruntime", "replayed outputs", torch.device("cpu"), 1

    def __init__(self, timed: _TimedNetwork):
        self.timed = timed

    def dense(self, images):
        x, out = self.timed.last.get("dense", (None, None))
        if x is None or x.shape != tuple(images.shape) or not np.array_equal(x, images.numpy()):
            out = self.timed.net.dense(images.numpy())
        return tuple(torch.from_numpy(o) for o in out)

    def instances(self, features, coords):
        c, out = self.timed.last.get("instance", (None, None))
        if c is None or c.shape != tuple(coords.shape) or not np.array_equal(c, coords.numpy()):
            out = self.timed.net.instances(features.numpy(), coords.numpy())
        return torch.from_numpy(out)


def deploy_report(model, images, *, flip: bool, threads: int, people=(1, 5, 10, 20, 30, 60), repeats: int = 3,
                  network=None, log=print) -> dict:
    """The deployment runtime stage by stage: ONNX Runtime's dense and instance graphs, the numpy decoder and,
    for comparison, the torch decoder (on the same network outputs), for each number of people in ``people``
    (``max_proposals`` = that number, ``center_threshold`` = 0: every image gets that many proposals; OKS-NMS then
    keeps some). Seconds per image: the median over ``repeats`` of each image, then the mean over images; the
    dense graph, which does not depend on the number of people, runs ``repeats`` times per image, not per number.
    ``network``: the graphs already in ONNX Runtime (a ``boir_core.deploy.OnnxNetwork``; default: exported here)."""
    from boir_core.deploy.decode_np import decode_np
    from boir_core.deploy.runtime import OnnxNetwork
    from boir_core.engine.inference.export import onnx_graphs

    if network is None:
        graphs = onnx_graphs(model.eval().cpu())
        network = OnnxNetwork(graphs["dense"], graphs["instance"], threads=threads)
    rows: dict = {n: defaultdict(list) for n in people}
    for i, (name, img, inv) in enumerate(images):
        x = img.numpy()
        views = np.ascontiguousarray(np.concatenate([x[None], x[None, ..., ::-1]]) if flip else x[None])
        network.dense(views)  # warm-up (first run of a shape)
        dense_s = []
        for _ in range(repeats):  # the dense graph does not depend on the number of people: timed once per image
            t0 = time.perf_counter()
            dense_out = network.dense(views)
            dense_s.append(time.perf_counter() - t0)
        net = _TimedNetwork(network, dense=(views, dense_out))
        for n in people:
            settings = DecodeSettings(flip_test=flip, flip_index=COCO_FLIP, oks_sigmas=COCO_SIGMAS, max_proposals=n,
                                      center_threshold=0.0)
            decode_np(net, x, inv, settings)  # warm-up (first run of this number of people)
            reps = defaultdict(list)
            for _ in range(repeats):
                net.times = {"dense": 0.0, "instance": 0.0}
                res = decode_np(net, x, inv, settings, image_id=i)
                reps["instance_s"].append(net.times["instance"])
                reps["decode_np_s"].append(res.time_decode)
                reps["decode_torch_s"].append(decode(_Replay(net), img, {"trans_inv": inv}, settings).time_decode)
            row = rows[n]
            row["dense_s"].append(statistics.median(dense_s))
            for k, v in reps.items():
                row[k].append(statistics.median(v))
            row["proposals"].append(res.num_proposals)
            row["poses"].append(len(res.poses))
            log(f"  image {i + 1}/{len(images)} {name}, {n} people: dense {row['dense_s'][-1]:.3f}s, instance "
                f"{row['instance_s'][-1]:.3f}s, numpy decode {row['decode_np_s'][-1] * 1e3:.1f} ms, torch decode "
                f"{row['decode_torch_s'][-1] * 1e3:.1f} ms")
    return {n: {k: statistics.mean(v) for k, v in r.items()} for n, r in rows.items()}


def format_deploy(rows: dict) -> str:
    lines = ["torch-free deployment runtime (ONNX Runtime + numpy decoder), seconds per image, and the torch decoder:",
             f"{'people':>6}{'proposals':>10}{'kept':>6}{'dense s':>9}{'instance s':>11}{'numpy decode ms':>16}"
             f"{'torch decode ms':>16}{'ms / person (np)':>17}"]
    for n, r in rows.items():
        lines.append(f"{n:>6}{r['proposals']:>10.1f}{r['poses']:>6.1f}{r['dense_s']:>9.3f}{r['instance_s']:>11.3f}"
                     f"{r['decode_np_s'] * 1e3:>16.2f}{r['decode_torch_s'] * 1e3:>16.2f}"
                     f"{r['decode_np_s'] * 1e3 / max(r['proposals'], 1):>17.3f}")
    lines.append("(dense: backbone, neck, center head on [image, mirror]; instance: the instance head for every "
                 "proposal in both views; decode: everything else, peaks to OKS-NMS)")
    return "\n".join(lines)


def accuracy_report(checkpoint: str, variants, *, images: int = 0, threads: int = 1, real: bool = True,
                    log=print) -> dict:
    """The AP and the poses of every variant against ``eager`` (test.backend=exact, the release's poses) on the
    trained ``checkpoint`` over its config's test split (SynthCrowd val for the shipped weights; ``images``: the
    first N, 0: all), and, with ``real``, the largest pose difference on the real fixtures through the same
    weights. Per variant: AP, AP's change against exact, images whose poses differ (> 0.01 px) and the largest
    difference in image pixels."""
    from boir_core.data import KeypointDataset
    from boir_core.engine.evaluation.evaluate import evaluate_results
    from boir_core.engine.evaluation.runner import _subset_gt
    from boir_core.engine.inference.predictor import BackendChoice, Predictor
    from boir_core.engine.inference.quantize import calibration_inputs
    from boir_core.engine.inference.weights import checkpoint_config, load_inference_model

    cfg = checkpoint_config(checkpoint)
    model, _ = load_inference_model(cfg, checkpoint, "cpu")
    dataset = KeypointDataset.from_config(cfg, train=False)
    n = len(dataset) if images <= 0 else min(images, len(dataset))
    gt = _subset_gt(dataset.ann_file, set(dataset.image_ids[:n])) if n < len(dataset) else dataset.ann_file
    real_images = load_images(9, cfg.data.input_size) if real else []
    rows: dict[str, dict] = {}
    ref_by_image: dict = {}
    ref_real: list = []
    # INT8 reads its activation ranges from train-split images (never the scored split), as test.backend does
    calibration = calibration_inputs(cfg) if any(v in CALIBRATED for v in variants) else None
    for v in variants:
        runner = make_variant(v, model, threads, calibration)
        pred = Predictor(cfg, model=model, backend=BackendChoice(runner.name), runner=runner)
        by_image = {}
        for i in range(n):
            s = dataset[i]
            by_image[s["image_id"]] = pred(s["image"], s["meta"], image_id=s["image_id"]).poses
        results = [p for poses in by_image.values() for p in poses]
        ap = evaluate_results(results, gt, dataset=cfg.data.dataset, backend=cfg.test.evaluator)["AP"]
        real_poses = [pred(img, {"trans_inv": inv, "image_id": 0}).poses for _, img, inv in real_images]
        if v == "eager":
            ref_by_image, ref_real, ref_ap = by_image, real_poses, ap
        diffs = [max_pose_diff(ref_by_image[k], by_image[k]) for k in by_image]
        real_diffs = [max_pose_diff(a, b) for a, b in zip(ref_real, real_poses)]
        moved = [d for k in by_image for d in matched_displacements(ref_by_image[k], by_image[k])]
        rows[v] = {"backend": runner.name, "variant": getattr(runner, "variant", v), "AP": ap,
                   "AP_change": ap - ref_ap, "images": n, "images_differing": sum(d > 0.01 for d in diffs),
                   "max_px": max(diffs, default=0.0),
                   "median_matched_px": float(np.median(moved)) if moved else 0.0,
                   "p90_matched_px": float(np.percentile(moved, 90)) if moved else 0.0, "real_images": len(real_images),
                   "real_differing": sum(d > 0.01 for d in real_diffs), "real_max_px": max(real_diffs, default=0.0)}
        log(f"  {v}: AP {ap:.4f}")
    return rows


def format_accuracy(rows: dict, checkpoint: str) -> str:
    lines = [f"AP and poses against exact (eager fp32, the release's poses), weights {checkpoint}",
             "(max px: inf where a path finds other people; matched px: each exact pose's mean keypoint distance to",
             "its nearest pose of the variant, median / 90th percentile over every exact pose)",
             f"{'variant':16s} {'backend':16s} {'AP':>7s} {'ΔAP':>8s} {'images differing':>17s} {'max px':>8s} "
             f"{'matched px':>13s} {'real differing':>15s} {'real max px':>12s}"]
    for v, r in rows.items():
        lines.append(f"{v:16s} {r['backend']:16s} {r['AP']:7.4f} {r['AP_change']:+8.4f} "
                     f"{r['images_differing']:>8d} of {r['images']:<6d} {r['max_px']:8.3g} "
                     f"{r['median_matched_px']:6.2g} / {r['p90_matched_px']:<5.2g} "
                     f"{r['real_differing']:>6d} of {r['real_images']:<5d} {r['real_max_px']:12.3g}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="hrnet_w32")
    ap.add_argument("--arch", default="boir", choices=["boir", "cid"])
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--images", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads (default: every core)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--variants", default=None, help="comma-separated; default: all of the device's")
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="also write the figures to this JSON file")
    ap.add_argument("--deploy", action="store_true",
                    help="time the torch-free deployment runtime (ONNX Runtime + numpy decoder) instead, and how "
                         "decoding grows with the number of people (--people)")
    ap.add_argument("--people", default="1,5,10,20,30,60", help="numbers of people for --deploy")
    ap.add_argument("--accuracy", nargs="?", const="shipped:boir", default=None, metavar="WEIGHTS",
                    help="instead of timing: the AP and pose changes of every CPU variant against exact on these "
                         "trained weights (default shipped:boir) over their test split (--images N: the first N, "
                         "0 all) and on the real fixtures")
    ap.add_argument("--stages", nargs="?", const="best", default=None,
                    help="then profile the first image stage by stage for eager and the fastest variant (in a "
                         "run with an ISA cap, the fastest that obeys it), or these, comma-separated")
    args = ap.parse_args(argv)
    threads = args.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: the CUDA variants need one (run with --device cpu)")
        return 1
    variants = args.variants.split(",") if args.variants else list(
        CPU_VARIANTS if args.device == "cpu" else ("eager",) + CUDA_VARIANTS)
    if variants[0] != "eager":
        variants.insert(0, "eager")  # the baseline every ratio refers to
    info = cpu_report(threads)
    if args.device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    if args.accuracy:
        print(f"bench_inference --accuracy: weights {args.accuracy} (their config's network, input size and test "
              f"settings), {args.images or 'all'} test images, device {args.device}")
    else:
        print(f"bench_inference: {args.arch} {args.backbone}, {args.size} px, flip={not args.no_flip}, "
              f"{args.images} images, device {args.device}")
    print("machine: " + json.dumps(info))
    if args.accuracy:
        rows = accuracy_report(args.accuracy, variants, images=args.images, threads=threads)
        print(format_accuracy(rows, args.accuracy))
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "machine": info, "accuracy": rows}, indent=1))
        return 0
    model = build_model(args.backbone, args.seed, args.device, arch=args.arch)
    images = load_images(args.images, args.size, args.seed)
    if args.deploy:
        rows = deploy_report(model, images, flip=not args.no_flip, threads=threads, repeats=args.repeats,
                             people=[int(n) for n in args.people.split(",")])
        print(format_deploy(rows))
        print(f"load average at the end {os.getloadavg()}")
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "machine": info, "deploy": rows}, indent=1))
        return 0
    calibration = (calibration_images(images, args.size, not args.no_flip)
                   if any(v in CALIBRATED for v in variants) else None)
    table = run(variants, images, model, flip=not args.no_flip, threads=threads, repeats=args.repeats,
                calibration=calibration)
    info["load_average_end"] = os.getloadavg()
    print(format_table(table, "eager"))
    print(f"load average at the start {info['load_average']}, at the end {info['load_average_end']}")
    stages = {}
    if args.stages:
        fastest = min((v for v in table if v != "eager" and table[v]["obeys_isa_cap"]),
                      key=lambda v: table[v]["ratio_total"], default=None)
        chosen = ["eager", fastest] if args.stages == "best" else args.stages.split(",")
        for v in dict.fromkeys(c for c in chosen if c):
            stages[v] = profile_stages(v, model, images[0][1], images[0][2], flip=not args.no_flip,
                                       threads=threads)
        print(format_stages(stages, images[0][0]))
        print(f"load average after the stage profile {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "machine": info, "table": table,
                                               "stages": stages}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
