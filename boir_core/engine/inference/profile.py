"""Table 5: parameter counts (total, inference, per part) and network / decoding latency, batch 1.

Latency follows the paper's protocol: one image per forward pass, flip test on, single scale; network time
(backbone, neck, center head and instance head) and decoding time (peaks, refinement, OKS-NMS) are
timed separately because bottom-up users care about post-processing time. The network runs through
``test.backend`` (a :class:`boir_core.engine.inference.predictor.Predictor`), as ``predict`` and ``evaluate`` run it, so
``profile test.backend=onnxruntime`` times ONNX Runtime; unset, it times predict's default, the fast ``torch``
path (docs/inference.md#exact-and-fast-inference). The result names the backend and its variant; the network
runs on ``test.device``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ...config import Config
from ...model import build_model, count_parameters
from ..distributed import device_name, resolve_device
from .predictor import FAST, BackendChoice, Predictor

__all__ = ["profile", "LatencySettings", "format_profile"]


@dataclass(frozen=True)
class LatencySettings:
    """How :func:`profile` times one image: a random image of ``input_size`` x ``input_size`` (None:
    ``data.input_size``), ``warmup`` untimed decodes, then the median of ``repeats`` timed ones, with or without
    ``flip_test``."""

    input_size: int | None = None
    repeats: int = 10
    warmup: int = 2
    flip_test: bool = True


def profile(cfg: Config, *, params_only: bool = False, latency: LatencySettings = LatencySettings()
            ) -> dict[str, Any]:
    """Parameter counts of the training and inference networks and, unless ``params_only``, the latency timed
    as ``latency`` says."""
    train_model = build_model(cfg, train=True, initialise=False)  # counting: no ImageNet weights needed
    train_counts = count_parameters(train_model)
    del train_model
    model = build_model(cfg, train=False)
    infer_counts = count_parameters(model)
    out: dict[str, Any] = {
        "config": cfg.name, "arch": cfg.model.arch, "backbone": cfg.model.backbone,
        "params": {"total": train_counts["total"], "inference": infer_counts["inference"],
                   "per_part": {k: v for k, v in train_counts.items() if k not in ("total", "inference")}},
    }
    if params_only:
        return out
    device = resolve_device(cfg.test.device)
    predictor = Predictor(cfg, model=model.to(device).eval(), device=device, backend=BackendChoice(default=FAST))
    repeats, warmup, flip_test = latency.repeats, latency.warmup, latency.flip_test
    size = int(latency.input_size or cfg.data.input_size)
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(3, size, size, generator=gen)
    meta = {"trans_inv": np.array([[1.0, 0, 0], [0, 1.0, 0]]), "image_id": 0}
    net, dec = [], []
    with torch.no_grad():
        for i in range(warmup + repeats):
            r = predictor(image, meta, flip_test=flip_test)
            if i >= warmup:
                net.append(r.time_network * 1000)
                dec.append(r.time_decode * 1000)
    out["latency"] = {
        "input_size": size, "batch": 1, "flip_test": flip_test, "repeats": repeats,
        "network_ms": float(np.median(net)), "decode_ms": float(np.median(dec)),
        "total_ms": float(np.median(np.add(net, dec))),
        "device": device_name(predictor.runner.device),
        "backend": predictor.backend, "variant": predictor.variant,
        "note": "random weights and a random image: decoding cost depends on how many centers pass the threshold",
    }
    return out


def format_profile(res: dict[str, Any]) -> str:
    p = res["params"]
    lines = [f"{res['config']} ({res['arch']}, {res['backbone']})",
             f"  parameters: inference {p['inference']:,} ({p['inference'] / 1e6:.1f} M), "
             f"training {p['total']:,} ({p['total'] / 1e6:.1f} M)"]
    for k, v in p["per_part"].items():
        lines.append(f"    {k:<12} {v:>12,}")
    if "latency" in res:
        lt = res["latency"]
        lines.append(f"  latency @ {lt['input_size']} px, batch 1, flip {lt['flip_test']} on {lt['device']}: "
                     f"network {lt['network_ms']:.1f} ms + decoding {lt['decode_ms']:.1f} ms "
                     f"(test.backend={lt['backend']}: {lt['variant']})")
    return "\n".join(lines)
