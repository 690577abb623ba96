"""Export the inference network to ONNX: two graphs around the shared decoder (``python -m boir_core export``).

Decoding needs the network twice per image, with the peak search in between
(docs/inference.md#decoding-steps): first the dense maps, then the instance head at the centers that the peak search
found. The peak search (smoothing, max-pool NMS, top-k above a threshold) is decoding and stays
shared Python/PyTorch code (:mod:`boir_core.engine.inference.decode`), so the network is exported as **two graphs**
rather than one graph that would have to re-implement top-k and thresholds in ONNX operators:

``dense.onnx``
    ``images`` [V, 3, H', W'] (view 0 the image, views 1.. its mirror; V = 2 with flip test, 1 without)
    → ``features`` [V, C_b, H, W] (the mirrored views flipped back, aligned with the image) and
    ``center_logits`` [V, 1, H, W]. Backbone, neck and center head (BoIR) / the 1×1 ``iia`` conv (CID).
``instance.onnx``
    ``features`` [V, C_b, H, W] and ``coords`` [n, 2] int64 (y, x) → ``instance_logits`` [V·n, K, H, W]:
    the instance head for every center in every view (view-major), computed as in
    :func:`boir_core.model.fast_instance.views_heatmaps`.

H', W', V and n are dynamic. The auxiliary training heads (BUK, embedding, box) are not in either graph.
``meta.json`` beside them records the architecture, K, the channels, the opset, the checkpoint and the
versions. ``python -m boir_core export`` also writes ``deploy.json`` (:func:`deploy_settings`: the decode
settings, the input size and normalisation, keypoint names, skeleton and flip index), which makes the folder a
deployment that :class:`boir_core.deploy.BoirDeployment` runs without torch (docs/inference.md#deployment-folder).
:class:`boir_core.engine.inference.backends.OnnxRuntimeRunner` runs these graphs (exported in memory from
the loaded checkpoint) for ``test.backend=onnxruntime`` / ``openvino``.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ... import __version__
from ...data import profile_for
from ...deploy.settings import SETTINGS_FILE, InputSettings, make_settings
from ...io import atomic_open, atomic_write_json
from ...model.fast_instance import views_heatmaps
from ...model.views import dense_views
from .decode_settings import decode_settings_from_config
from .quantize import calibration_inputs, int8_graphs
from .weights import load_inference_model, resolve_checkpoint

__all__ = ["DenseGraph", "InstanceGraph", "onnx_graphs", "export_onnx", "export_checkpoint", "deploy_settings",
           "OPSET", "FORMATS"]

OPSET = 17
FORMATS = ("onnx",)


class DenseGraph(nn.Module):
    """images [V, 3, H', W'] (view 0 as is, views 1.. mirrored) → (aligned features, center logits)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # the mirrored views flipped back at the feature level (docs/inference.md#decoding-steps), as every runner
        return dense_views(self.model, images)


class InstanceGraph(nn.Module):
    """features [V, C_b, H, W], coords [n, 2] (y, x) → instance logits [V·n, K, H, W] (view-major)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        return views_heatmaps(self.model.kpt_head, features, coords)


def _export_one(module: nn.Module, args: tuple, input_names, output_names, dynamic_axes, opset: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python ints from shapes (the sizes stay dynamic)
        torch.onnx.export(module, args, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=opset, dynamo=False,
                          do_constant_folding=True)
    return buf.getvalue()


@torch.no_grad()
def onnx_graphs(model: nn.Module, *, opset: int = OPSET, probe_size: int = 64) -> dict[str, bytes]:
    """The two ONNX graphs of an inference model (BoIR or CID, eval mode, on the CPU) as bytes."""
    if not all(hasattr(model, a) for a in ("features", "center_logits", "kpt_head")):
        raise TypeError(f"{type(model).__name__} is not a BoIR / CID network (needs features, center_logits, "
                        "kpt_head)")
    model = model.eval()
    dev = next(model.parameters()).device
    images = torch.zeros(2, 3, probe_size, probe_size + 64, device=dev)
    dense = DenseGraph(model).eval()
    d = _export_one(dense, (images,), ["images"], ["features", "center_logits"],
                    {"images": {0: "views", 2: "height", 3: "width"},
                     "features": {0: "views", 2: "map_height", 3: "map_width"},
                     "center_logits": {0: "views", 2: "map_height", 3: "map_width"}}, opset)
    feats, _ = dense(images)
    coords = torch.tensor([[1, 2], [3, 5], [0, 0]], dtype=torch.long, device=dev)
    inst = _export_one(InstanceGraph(model).eval(), (feats, coords), ["features", "coords"], ["instance_logits"],
                       {"features": {0: "views", 2: "map_height", 3: "map_width"}, "coords": {0: "people"},
                        "instance_logits": {0: "views_x_people", 2: "map_height", 3: "map_width"}}, opset)
    return {"dense": d, "instance": inst}


def export_onnx(model: nn.Module, out_dir: str | os.PathLike, *, meta: dict[str, Any] | None = None,
                opset: int = OPSET, graphs: dict[str, bytes] | None = None) -> dict[str, Path]:
    """Write ``dense.onnx``, ``instance.onnx`` and ``meta.json`` into ``out_dir`` (each file atomically);
    ``graphs``: already made ones (e.g. :func:`~boir_core.engine.inference.quantize.int8_graphs`'), else exported
    here."""
    graphs = graphs if graphs is not None else onnx_graphs(model, opset=opset)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in graphs.items():
        with atomic_open(out / f"{name}.onnx", "wb") as f:
            f.write(data)
        paths[name] = out / f"{name}.onnx"
    info = {"format": "boir-kit-onnx-v1", "arch": getattr(model, "arch", type(model).__name__.lower()),
            "num_keypoints": int(model.num_keypoints), "feature_channels": int(model.backbone.out_channels),
            "opset": opset, "torch": torch.__version__, "model_config": getattr(model, "config", None),
            "graphs": {
                "dense": {"inputs": {"images": "[V, 3, H', W'] float32, view 0 the image, views 1.. mirrored"},
                          "outputs": {"features": "[V, C_b, H'/4, W'/4] (mirrored views flipped back)",
                                      "center_logits": "[V, 1, H'/4, W'/4]"}},
                "instance": {"inputs": {"features": "[V, C_b, H, W]", "coords": "[n, 2] int64 (y, x)"},
                             "outputs": {"instance_logits": "[V*n, K, H, W], view-major"}}},
            **(meta or {})}
    paths["meta"] = atomic_write_json(out / "meta.json", info)
    return paths


def deploy_settings(cfg, model: nn.Module, **extra: Any) -> dict[str, Any]:
    """The ``deploy.json`` record of ``cfg``'s test settings and data-set profile for ``model``
    (:func:`boir_core.deploy.make_settings`; docs/inference.md#deployment-folder)."""
    prof = profile_for(cfg)
    if int(model.num_keypoints) != prof.num_keypoints:
        raise ValueError(f"the network has {model.num_keypoints} keypoints but data.dataset={cfg.data.dataset!r} has "
                         f"{prof.num_keypoints}: the deployment would name the wrong keypoints")
    return make_settings(arch=getattr(model, "arch", type(model).__name__.lower()), profile=prof,
                         input=InputSettings(cfg.data.input_size),
                         decode=decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas),
                         kit_version=__version__, extra={"torch": torch.__version__, "opset": OPSET, **extra})


def export_checkpoint(cfg, checkpoint: str | os.PathLike, *, fmt: str = "onnx",
                      output: str | os.PathLike | None = None, int8: bool = False,
                      calibration: str | os.PathLike | None = None) -> dict[str, Path]:
    """What ``python -m boir_core export`` runs: load ``checkpoint`` (any file the kit reads, released
    weights included) into ``cfg``'s inference network and write its graphs into the folder ``output``
    (default ``<output_dir>/<name>/onnx``), with ``deploy.json`` beside them (a deployment folder: the keypoint
    names, skeleton, flip index and OKS sigmas of :func:`boir_core.data.profile_for`, a custom set's too).
    ``int8``: the dense graph quantised (:mod:`boir_core.engine.inference.quantize`), calibrated on
    ``test.calibration_images`` images of the train split or of the folder ``calibration``; ``meta.json`` and
    ``deploy.json`` say so."""
    if fmt not in FORMATS:
        raise ValueError(f"export format {fmt!r} is not one of {list(FORMATS)}")
    model, _ = load_inference_model(cfg, checkpoint, "cpu")
    out = Path(output) if output is not None else Path(cfg.output_dir) / cfg.name / "onnx"
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output {out} is a file; export writes a folder (dense.onnx, instance.onnx, "
                                 "meta.json)")
    source = {"config": cfg.name, "checkpoint": str(resolve_checkpoint(checkpoint))}
    graphs = None
    if int8:
        inputs = calibration_inputs(cfg, folder=calibration)  # a bad folder fails before any file is written
        graphs = int8_graphs(onnx_graphs(model), inputs)
        source["dense_precision"] = {"precision": "int8", "calibration_images": len(inputs),
                                     "calibration": str(calibration) if calibration else
                                     f"{cfg.data.root} split {cfg.data.train_split}"}
    settings = deploy_settings(cfg, model, **source)  # checked before any file is written
    paths = export_onnx(model, out, meta={**source, "flip_test": cfg.test.flip_test}, graphs=graphs)
    paths["deploy"] = atomic_write_json(out / SETTINGS_FILE, settings, indent=1)
    return paths
