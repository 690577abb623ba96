"""Inference backends (test.backend) and ONNX export give the poses of the plain PyTorch network."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest
import torch

from boir_core.engine.inference.backends import (
    BackendUnavailable,
    OnnxRuntimeRunner,
    RunnerOptions,
    TorchRunner,
    TorchSettings,
    make_runner,
)
from boir_core.engine.inference.decode import DecodeSettings, decode
from boir_core.model import CID, BoIR, count_parameters, save_checkpoint
from boir_core.model.random_weights import seeded_trained_like_

COCO_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
SIGMAS = [0.05] * 17
TOL_PX = 1e-3


def small(arch: str, train_heads: bool = False, seed: int = 0):
    if arch == "boir":
        m = BoIR(17, backbone="hrnet_w18_small", train_heads=train_heads, neck_channels=32, neck_middle_channels=16,
                 head_channels=16, inst_channels=16, emb_dim=8)
    else:
        m = CID(17, backbone="hrnet_w18_small", inst_channels=16)
    return seeded_trained_like_(m, seed=seed)


def keypoints(poses) -> np.ndarray:
    return np.array([p["keypoints"] for p in poses], dtype=np.float64).reshape(len(poses), -1, 3)


def assert_same_poses(out, ref, tol=TOL_PX):
    assert len(out) == len(ref) > 0
    a, b = keypoints(out), keypoints(ref)
    assert np.abs(a[..., :2] - b[..., :2]).max() <= tol
    np.testing.assert_allclose(a[..., 2], b[..., 2], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([p["score"] for p in out], [p["score"] for p in ref], rtol=1e-4, atol=1e-6)


def decode_all(net, images, flip=True, max_proposals=30):
    poses = []
    for i, (img, inv) in enumerate(images):
        settings = DecodeSettings(flip_test=flip, flip_index=COCO_FLIP, oks_sigmas=SIGMAS,
                                  max_proposals=max_proposals)
        poses += decode(net, img, {"trans_inv": inv, "image_id": i}, settings).poses
    return poses


def random_images(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    inv = np.array([[2.0, 0.0, 3.0], [0.0, 2.0, 5.0]])
    return [(torch.randn(3, h, w, generator=g), inv) for h, w in sizes]


SIZES = [(128, 192), (192, 128)]  # landscape and portrait: the image size is dynamic in the graphs


@pytest.mark.parametrize("arch", ["boir", "cid"])
def test_torch_runner_gives_the_plain_models_poses(arch):
    model = small(arch)
    images = random_images(SIZES)
    ref = decode_all(model, images)
    for runner in (TorchRunner(model), TorchRunner(model, TorchSettings.plain()),
                   TorchRunner(model, TorchSettings(channels_last=False))):
        assert_same_poses(decode_all(runner, images), ref)
    assert_same_poses(decode_all(TorchRunner(model), images, flip=False), decode_all(model, images, flip=False))
    assert TorchRunner(model).folded > 0


@pytest.mark.parametrize("arch", ["boir", "cid"])
def test_onnx_export_round_trips_through_onnxruntime(arch, tmp_path):
    """Export to files, run them in ONNX Runtime: the poses of PyTorch, for two image sizes, with and
    without flip, and with a different number of people than at export time (3)."""
    pytest.importorskip("onnxruntime")
    from boir_core.engine.inference.export import export_onnx

    model = small(arch)
    paths = export_onnx(model, tmp_path / "onnx")
    meta = json.loads(paths["meta"].read_text())
    assert meta["arch"] == arch and meta["num_keypoints"] == 17
    graphs = {k: paths[k].read_bytes() for k in ("dense", "instance")}
    runner = OnnxRuntimeRunner(model, graphs=graphs)
    images = random_images(SIZES, seed=1)
    assert_same_poses(decode_all(runner, images), decode_all(model, images))
    assert_same_poses(decode_all(runner, images, flip=False, max_proposals=7),
                      decode_all(model, images, flip=False, max_proposals=7))


def test_exported_graph_holds_only_the_inference_network(tmp_path):
    """A model built with the training heads exports the same weights as the inference model: the BUK,
    embedding and box heads are not in the graphs."""
    onnx = pytest.importorskip("onnx")
    from boir_core.engine.inference.export import onnx_graphs

    def weights(model):
        total = 0
        for data in onnx_graphs(model).values():
            g = onnx.load_from_string(data).graph
            total += sum(int(np.prod(t.dims)) for t in g.initializer)
        return total

    full = small("boir", train_heads=True)
    infer = small("boir", train_heads=False)
    infer.load_state_dict({k: v for k, v in full.state_dict().items() if k in infer.state_dict()})
    n_full, n_infer = weights(full), weights(infer)
    assert n_full == n_infer
    counts = count_parameters(full)
    aux = counts["total"] - counts["inference"]
    # the graphs hold the inference weights (BN folded into the convs by the exporter), not the aux heads
    assert aux > 0 and abs(n_infer - counts["inference"]) < aux / 2


def test_openvino_gives_the_same_poses():
    pytest.importorskip("openvino")
    model = small("boir")
    images = random_images(SIZES[:1], seed=2)
    assert_same_poses(decode_all(make_runner("openvino", model), images), decode_all(model, images))


@pytest.mark.parametrize("backend,extra", [("onnxruntime", "onnx"), ("openvino", "openvino"),
                                           ("onnxruntime_int8", "onnx")])
def test_missing_backend_names_the_extra(backend, extra, monkeypatch, tmp_path):
    from boir_core.config import load_config

    monkeypatch.setitem(sys.modules, backend.removesuffix("_int8"), None)  # import fails as if not installed
    # a config whose train split is missing: INT8's builder asks for its package before reading any image
    cfg = load_config("tiny", [f"data.root={tmp_path}"])
    with pytest.raises(BackendUnavailable, match=rf"test.backend={backend} .*boir-kit\[{extra}\]"):
        make_runner(backend, small("cid"), cfg=cfg)
    with pytest.raises(ValueError, match="tensorrt"):
        make_runner("tensorrt", small("cid"))


def test_a_backend_is_one_entry_whose_builder_takes_what_it_needs(monkeypatch):
    """make_runner hands a backend's builder one context (the network, the config, the caller's options): a new
    backend is its entry in RUNNERS beside its runner class (and its name in config.registry.BACKENDS, which
    RUNNERS must agree with); options a backend does not take are refused, naming them."""
    from boir_core.config import BACKENDS, load_config
    from boir_core.engine.inference import backends

    assert tuple(backends.RUNNERS) == BACKENDS
    assert backends.EXTRAS == {"onnxruntime": "onnx", "openvino": "openvino", "onnxruntime_int8": "onnx"}
    model, cfg, seen = small("cid"), load_config("tiny"), []

    def build(ctx):
        seen.append(ctx)
        return TorchRunner(ctx.model, TorchSettings(fold_bn=False), name="mine")

    monkeypatch.setitem(backends.RUNNERS, "mine", backends.Backend(build, takes=frozenset({"threads"})))
    runner = make_runner("mine", model, cfg=cfg, options=RunnerOptions(threads=3))
    assert runner.name == "mine" and runner.variant == "fast_instance+channels_last"
    assert seen[0].model is model and seen[0].cfg is cfg and seen[0].options == RunnerOptions(threads=3)
    assert seen[0].device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"mine takes no options \['profiling'\] \(it takes \['threads'\]"):
        make_runner("mine", model, options=RunnerOptions(profiling=True))
    with pytest.raises(ValueError, match=r"torch takes no options \['threads'\] \(it takes none"):
        make_runner("torch", model, options=RunnerOptions(threads=2))
    with pytest.raises(RuntimeError, match="RUNNERS .* disagrees with boir_core.config.registry.BACKENDS"):
        backends._check_agrees_with_registry(backends.RUNNERS, BACKENDS)  # "mine" has no name in the registry


def test_gpu_modes_on_the_cpu_for_shape():
    """The benchmark's GPU variants, checked where no GPU is: fp16 weights, torch.compile tracing (with
    dynamo's eager back end, so no compiler runs) and CUDA graphs refusing a CPU model."""
    model = small("boir")
    images = random_images(SIZES[:1], seed=3)
    ref = decode_all(model, images)
    compiled = TorchRunner(model, TorchSettings(mode="compile", compile_backend="eager"))
    assert_same_poses(decode_all(compiled, images), ref)
    half = TorchRunner(model, TorchSettings(half=True, fold_bn=False, channels_last=False))
    feats, center = half.dense(images[0][0][None].repeat(2, 1, 1, 1))
    assert feats.dtype == torch.float16 and center.dtype == torch.float32 and center.shape == (2, 1, 32, 48)
    inst = half.instances(feats, torch.tensor([[3, 4], [10, 20]]))
    assert inst.shape == (4, 17, 32, 48) and inst.dtype == torch.float32 and torch.isfinite(inst).all()
    with pytest.raises(ValueError, match="CUDA"):
        TorchRunner(model, TorchSettings(mode="cudagraphs"))


def test_export_cli_and_predict_with_each_backend(tmp_path, capsys):
    """``export`` writes the graphs from a checkpoint; ``predict`` with test.backend=onnxruntime writes the
    poses of test.backend=torch."""
    pytest.importorskip("onnxruntime")
    import cv2

    from boir_core.__main__ import main

    ckpt = save_checkpoint(small("boir"), tmp_path / "w.pt")
    over = ["model.neck_channels=32", "model.neck_middle_channels=16", "model.head_channels=16",
            "model.inst_channels=16", "model.emb_dim=8", "model.backbone=hrnet_w18_small", "train.device=cpu"]
    assert main(["export", "--config", "tiny", "--checkpoint", str(ckpt), "--output", str(tmp_path / "x"),
                 *over]) == 0
    assert {p.name for p in (tmp_path / "x").iterdir()} == {"dense.onnx", "instance.onnx", "meta.json", "deploy.json"}
    (tmp_path / "file").write_text("")
    capsys.readouterr()
    assert main(["export", "--config", "tiny", "--checkpoint", str(ckpt), "--output", str(tmp_path / "file"),
                 *over]) == 2  # one error line (exit status 2), before the export
    assert f"error: {tmp_path / 'file'}: " in capsys.readouterr().err and (tmp_path / "file").read_text() == ""
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.random.default_rng(0).integers(0, 256, (100, 150, 3), dtype=np.uint8))
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / f"{backend}.json"
        assert main(["predict", "--config", "tiny", "--checkpoint", str(ckpt), "--output", str(outs[backend]),
                     "--quiet", str(img), *over, f"test.backend={backend}"]) == 0
    assert_same_poses(json.loads(outs["onnxruntime"].read_text()), json.loads(outs["torch"].read_text()))


@pytest.mark.real
def test_backends_agree_on_the_real_fixtures(real_fixtures):
    """Every backend against plain PyTorch on the real COCO / CrowdPose / OCHuman images (512 px canvas,
    flip test, seeded trained-like weights of a small HRNet): keypoints within 1e-3 px."""
    import cv2

    from boir_core.data.transforms import eval_resize, normalize_image, warp

    images = []
    for f in sorted(p for d in ("coco", "crowdpose", "ochuman") for p in (real_fixtures / d).glob("*.jpg")):
        img = cv2.cvtColor(cv2.imread(str(f)), cv2.COLOR_BGR2RGB)
        tr = eval_resize(img.shape[1], img.shape[0], 256)
        images.append((torch.from_numpy(normalize_image(warp(img, tr.matrix, tr.canvas))), tr.trans_inv))
    assert len(images) == 9
    model = small("boir")
    ref = decode_all(model, images)
    backends = ["torch"] + [b for b in ("onnxruntime", "openvino") if _importable(b)]
    for b in backends:
        assert_same_poses(decode_all(make_runner(b, model), images), ref)


def _importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def test_profile_times_the_network_through_test_backend(monkeypatch):
    """`python -m boir_core profile test.backend=onnxruntime` times ONNX Runtime's sessions (one dense pass per
    timed or warm-up image), and the default times the torch runner without touching ONNX Runtime (22 s
    at load 5)."""
    pytest.importorskip("onnxruntime")
    from boir_core.config import load_config
    from boir_core.engine.inference.profile import LatencySettings, format_profile, profile

    calls = []
    real_run = OnnxRuntimeRunner._run
    monkeypatch.setattr(OnnxRuntimeRunner, "_run", lambda self, graph, feeds: calls.append(graph)
                        or real_run(self, graph, feeds))
    cfg = load_config("tiny", ["train.device=cpu", "test.backend=onnxruntime"])
    timing = LatencySettings(input_size=64, repeats=2, warmup=1)
    res = profile(cfg, latency=timing)["latency"]
    assert calls.count("dense") == 3 and res["network_ms"] > 0
    assert res["backend"] == "onnxruntime" and res["variant"].startswith("onnxruntime ")
    calls.clear()
    res = profile(cfg.override("test.backend=torch"), latency=timing)
    assert calls == [] and res["latency"]["backend"] == "torch" and "fold_bn" in res["latency"]["variant"]
    assert "test.backend=torch: fold_bn+fast_instance+channels_last" in format_profile(res)


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_graph_runners_time_their_nodes_when_asked(backend):
    """profiling=True keeps the poses and gives per-node times of the last run: the backbone's stages are
    among the node names, no node takes longer than the call, and the node times add up to no more than the
    call's wall time on each of the runner's threads (~10 s each when
    idle; 80-120 s at load 10)."""
    pytest.importorskip(backend)
    import time

    from boir_core.engine.inference.backends import OpenVinoRunner
    from boir_core.engine.inference.export import onnx_graphs

    cls = OnnxRuntimeRunner if backend == "onnxruntime" else OpenVinoRunner
    model = small("boir")
    graphs = onnx_graphs(model)
    images = random_images(SIZES[:1], seed=4)
    runner = cls(model, profiling=True, graphs=graphs)
    assert_same_poses(decode_all(runner, images), decode_all(model, images))
    x = images[0][0][None].repeat(2, 1, 1, 1)
    t0 = time.perf_counter()
    runner.dense(x)
    wall = time.perf_counter() - t0
    nodes = runner.layer_times("dense")
    assert any("/backbone/stage4/" in name for name in nodes) and any("center_head" in name for name in nodes)
    # Each node's time is within the call; their sum is not bounded by the wall time alone: the runtimes
    # time nodes on the thread that runs them, and independent nodes (HRNet's parallel branches) may overlap
    # on the runner's threads (OpenVINO once summed to 22.8 ms for a 20.7 ms call). The bound is wall x threads.
    total = sum(sec for sec, _ in nodes.values())
    assert 0 < max(sec for sec, _ in nodes.values()) <= wall
    # OpenVINO keeps its own pool: with OMP_NUM_THREADS=1 (make test's workers) its runner says 1 thread and its
    # nodes still overlapped (64.4 ms of nodes in a 60.5 ms call); the hard bound is the cores it may run on
    cores = len(os.sched_getaffinity(0))
    assert total <= wall * max(runner.threads, cores), (total, wall, runner.threads, cores)
    assert all(isinstance(kernel, str) for _, kernel in nodes.values())
    with pytest.raises(RuntimeError, match="profiling=True"):
        cls(model, graphs=graphs).layer_times("dense")


def test_bench_inference_stage_profile_accounts_for_every_second():
    """benchmarks/bench_inference.py --stages: module paths and graph node names map to the same stages, and
    each variant's stages add up to its network + decoding time (31 s at load 5)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_inference.py"
    spec = importlib.util.spec_from_file_location("bench_inference", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    for module_path, node, stage in [
            ("backbone.conv1", "/backbone/conv1/Conv", "stem"), ("backbone.layer1.0", "/backbone/layer1/layer1.0/Add",
                                                                   "layer1"),
            ("backbone.transition1.1", "/backbone/transition1.1/transition1.1.0/Conv", "stage2"),
            ("backbone.stage4.2", "/backbone/stage4/stage4.2/fuse_layers.0/Add", "stage4"),
            (None, "/backbone/Resize_1", "branch concat"), ("multihead.neck.0", "/neck.0/project/Conv", "neck"),
            ("multihead.center_head", "/center_head/head/Conv", "center head"), ("iia", None, "center head"),
            ("kpt_head", None, "instance head"), ("backbone", "/Slice_2", None)]:
        for name in (module_path, node):
            if name is not None:
                assert bench.stage_of(name) == stage, name
    model = small("boir")
    (img, inv), = random_images([(128, 192)], seed=5)
    variants = ["eager", "torch"] + (["onnxruntime"] if importlib.util.find_spec("onnxruntime") else [])
    for v in variants:
        p = bench.profile_stages(v, model, img, inv, flip=True, threads=1)
        st = p["stages"]
        assert set(st) == set(bench.STAGES)
        for s in ("stem", "layer1", "stage2", "stage3", "stage4", "neck", "center head", "instance head"):
            assert st[s] > 0, (v, s)
        assert sum(st.values()) == pytest.approx(p["network_s"] + p["decode_s"], rel=1e-6), v
    assert "stage4" in bench.format_stages({"eager": p, "other": p}, "random")


def test_a_runner_handed_to_the_evaluation_must_be_the_configs_backend():
    """run_evaluation / decode_dataset reuse a notebook's runner only when it is test.backend's: the metrics
    record test.backend, so a different runner is an error naming both."""
    from boir_core.config import load_config
    from boir_core.engine.evaluation.runner import DecodedDataset, decode_dataset

    model = small("boir")
    cfg = load_config("tiny", ["test.backend=onnxruntime"])
    with pytest.raises(ValueError, match=r"'torch' runner but test.backend='onnxruntime'"):
        decode_dataset(cfg, model, [], progress=False, runner=TorchRunner(model))
    assert decode_dataset(cfg.override("test.backend=torch"), model, [], progress=False,
                          runner=TorchRunner(model)) == DecodedDataset([], 0.0, 0.0, 0)
