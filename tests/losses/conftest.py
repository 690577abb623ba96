"""Random batches and model outputs that follow CONTRIBUTING.md, small enough for a 2-core machine."""
from __future__ import annotations

import pytest
import torch


def random_instances(counts, height, width, dtype=torch.float64, seed=0):
    """imgid [N], bbox [N,4] xywh (some crossing the border), center [N,2] (x,y), coord [N,2] (y,x)."""
    g = torch.Generator().manual_seed(seed)
    imgid = torch.cat([torch.full((c,), b, dtype=torch.long) for b, c in enumerate(counts)]) if sum(counts) else \
        torch.zeros(0, dtype=torch.long)
    perm = torch.randperm(imgid.numel(), generator=g)
    imgid = imgid[perm]  # instances of one image are not contiguous
    n = imgid.numel()
    xy = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([width, height], dtype=dtype) - 2
    wh = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([width, height], dtype=dtype) * 0.6 + 0.3
    bbox = torch.cat([xy, wh], 1)
    center = xy + wh * torch.rand(n, 2, generator=g, dtype=dtype)
    cx = center[:, 0].floor().clamp(0, width - 1).long()
    cy = center[:, 1].floor().clamp(0, height - 1).long()
    coord = torch.stack([cy, cx], 1)
    return imgid, bbox, center, coord


def random_batch(counts=(2, 0, 3, 1), num_keypoints=3, size=(12, 10), emb_dim=5, dtype=torch.float64, seed=0):
    """(outputs, batch) for a BoIR step: logits/raw maps and targets with exact-1 peaks."""
    height, width = size
    g = torch.Generator().manual_seed(seed + 1)
    num_images = len(counts)
    imgid, bbox, center, coord = random_instances(counts, height, width, dtype, seed)
    n = imgid.numel()

    def heat(*shape):
        t = torch.rand(*shape, generator=g, dtype=dtype) ** 4
        t[t > 0.9] = 1.0  # a few exact positives
        return t

    batch = {
        "multi_heatmap": heat(num_images, num_keypoints + 1, height, width),
        "multi_mask": (torch.rand(num_images, 1, height, width, generator=g) > 0.1).to(dtype),
        "instance_coord": coord, "instance_imgid": imgid, "instance_center": center,
        "instance_heatmap": heat(n, num_keypoints, height, width),
        "instance_mask": (torch.rand(n, num_keypoints, generator=g) > 0.2).to(dtype),
        "instance_bbox": bbox,
    }
    outputs = {
        "center": torch.randn(num_images, 1, height, width, generator=g, dtype=dtype),
        "buk": torch.randn(num_images, num_keypoints, height, width, generator=g, dtype=dtype),
        "emb": torch.randn(num_images, emb_dim, height, width, generator=g, dtype=dtype),
        "bbox": torch.rand(num_images, 4, height, width, generator=g, dtype=dtype) * 6,
        "instance_heatmap": torch.randn(n, num_keypoints, height, width, generator=g, dtype=dtype),
        "features": torch.randn(num_images, 7, height, width, generator=g, dtype=dtype),
    }
    return outputs, batch


@pytest.fixture
def make_batch():
    return random_batch


@pytest.fixture
def make_instances():
    return random_instances
