"""Helpers for the model tests (imported as a plain module): the released key/shape table, cheap builders."""
from __future__ import annotations

import ast
from pathlib import Path

import torch

SPEC = Path(__file__).resolve().parents[3] / "shared" / "spec" / "official_state_dict.txt"
COLUMNS = {"coco_w32": 0, "coco_w48": 1, "crowdpose_w32": 2}
AUX = ("multihead.buk_head.", "multihead.emb_head.", "multihead.bbox_head.")


def official_shapes(column: str, train: bool = True) -> dict[str, tuple[int, ...]]:
    """key → shape for one released model, parsed from official_state_dict.txt (file order kept)."""
    if not SPEC.is_file():
        from boir_skips import skip_or_fail_in_ci

        skip_or_fail_in_ci(f"{SPEC} not found (the shared spec's released key/shape table)")
    out = {}
    for line in SPEC.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, *shapes = line.split("\t")
        if not train and key.startswith(AUX):
            continue
        out[key] = tuple(ast.literal_eval(shapes[COLUMNS[column]]))
    return out


def random_state_dict(shapes: dict[str, tuple[int, ...]], seed: int = 0, cheap: bool = False):
    """Random tensors with the given shapes. ``cheap``: one distinct constant per key, stored as an
    expanded scalar (no memory), still enough to tell any two keys apart."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i, (k, shape) in enumerate(shapes.items()):
        if k.endswith("num_batches_tracked"):
            sd[k] = torch.tensor(1000 + i, dtype=torch.long)
        elif cheap:
            sd[k] = torch.tensor([float(i) + 0.5]).expand(shape) if shape else torch.tensor(float(i) + 0.5)
        else:
            sd[k] = torch.randn(shape, generator=g)
    return sd


def empty_model(cls, *args, **kwargs):
    """Build on the meta device, then allocate uninitialised CPU memory (fast, for loading tests)."""
    with torch.device("meta"):
        m = cls(*args, **kwargs)
    return m.to_empty(device="cpu")


def randomise(module, seed=0):
    """Every parameter of ``module`` drawn from N(0, 0.3²) with a seeded generator (in place; returns it)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return module
