"""The released BoIR/CID inference decoding (docs/inference.md#decoding-steps), step by step.

Given one resized test image (a [3, H', W'] tensor, docs/inference.md#test-time-resize) and its ``meta``,
:func:`decode` returns the people it finds as COCO keypoint results::

    {"image_id": 785, "category_id": 1, "keypoints": [x1, y1, s1, ..., xK, yK, sK], "score": 0.71}

The steps (H, W are the output-map size, H'/4 and W'/4):

1. **Batch** [image, mirrored image] (``flip_test``) and run the backbone once: ``F = model.features``.
2. **Un-flip at the feature level**: mirror the second feature map back, so both are aligned with the
   original image (:func:`boir_core.model.views.flip_back`).
3. **Center map** C = mean over the two images of ``sigmoid_clamp(model.center_logits(F))``.

Steps 1-3's network calls and step 6's instance head run through a runner
(:class:`boir_core.engine.inference.backends.Runner`, ``test.backend``); a plain network is run as the ``exact`` runner.
4. **Smooth** C ← (C + avgpool_k(C)) / 2 (k = ``center_pool_kernel``, zero padding counted in the mean).
5. **Peaks**: max-pool NMS with a kernel that grows with the map (7 if (H+W)/2 > 300, 5 if > 200, else 3);
   keep the top ``max_proposals`` values that exceed ``center_threshold``. Nothing left → no people.
6. **Instance parameters**: each peak (y, x) is looked up in *both* aligned feature maps (image ids 0 and 1)
   and ``model.instance_heatmaps`` draws K heatmaps per person from each.
7. **Flip average**: the mirrored half has left and right swapped, so its channels are permuted by
   ``flip_index`` before averaging with the original half (no spatial flip: step 2 did it).
8. **Keypoints**: smooth each heatmap like step 4, take its argmax and move it a quarter pixel towards the
   larger neighbour (x and y separately; no move on the border). Score = smoothed peak × center score.
9. **Back to the image**: input-canvas pixel = 4·map + 2, then the inverse resize affine
   ``meta['trans_inv']`` (2×3). Person score = mean keypoint score.
10. **OKS-NMS** (:func:`boir_core.engine.inference.oks.oks_nms`), greedy, threshold 0.8 (0.7 for OCHuman).

Timing: :class:`DecodeResult` reports the time spent inside the network calls (``time_network``) and in
everything else (``time_decode``) separately, in seconds, synchronising CUDA before each clock read.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as nnf

from boir_core.engine.inference.backends import Runner, as_runner
from boir_core.engine.inference.decode_settings import (  # decode's settings, re-exported
    DecodeSettings,
    decode_settings_from_config,
)
from boir_core.engine.inference.oks import oks_nms
from boir_core.ops import sigmoid_clamp

__all__ = [
    "DecodeResult",
    "decode",
    "decode_batch",
    "DecodeSettings",
    "decode_settings_from_config",
    "smooth_heatmaps",
    "peak_pool_kernel",
    "find_peaks",
    "refine_quarter_pixel",
    "map_to_image",
]


#: The network's output stride: its maps are the input canvas at 1/4 (HRNet's highest-resolution branch).
OUTPUT_STRIDE = 4

@dataclass
class DecodeResult:
    """What :func:`decode` / :func:`decode_batch` return.

    ``poses``: COCO keypoint results (list of dicts). ``time_network`` / ``time_decode``: seconds spent in
    the network calls / in the decoding around them. ``intermediates``: the maps of every step when
    ``return_intermediates=True`` (one dict per image for :func:`decode_batch`), else None.
    """

    poses: list[dict[str, Any]]
    time_network: float = 0.0
    time_decode: float = 0.0
    num_images: int = 1
    intermediates: Any = None
    device: str = "cpu"

    @property
    def time_total(self) -> float:
        return self.time_network + self.time_decode


# ---- small building blocks (each used by the notebook on its own) --------------------------------------

def smooth_heatmaps(maps: torch.Tensor, kernel: int) -> torch.Tensor:
    """(M + avgpool_k(M)) / 2 over the last two dims, stride 1, zero padding counted in the average.

    ``maps`` is [..., H, W]; ``kernel`` must be odd so the output keeps the size.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"smoothing kernel must be a positive odd integer, got {kernel}")
    shape = maps.shape
    flat = maps.reshape(1, -1, shape[-2], shape[-1])  # all maps as channels of one image: fastest pooling
    pooled = nnf.avg_pool2d(flat, kernel, stride=1, padding=(kernel - 1) // 2, count_include_pad=True)
    return pooled.add_(flat).mul_(0.5).reshape(shape)


def peak_pool_kernel(height: int, width: int) -> int:
    """Max-pool NMS kernel of the release: 7 if (H + W)/2 > 300, 5 if > 200, else 3 (output-map pixels)."""
    m = (height + width) / 2.0
    return 7 if m > 300 else 5 if m > 200 else 3


def find_peaks(center: torch.Tensor, max_proposals: int, threshold: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Max-pool NMS on a [H, W] map, then the top ``max_proposals`` values above ``threshold``.

    Returns (coords [n, 2] int64 as (y, x), scores [n], the NMS-ed map [H, W] with non-peaks zeroed),
    best score first.
    """
    h, w = center.shape
    k = peak_pool_kernel(h, w)
    pooled = nnf.max_pool2d(center[None, None], k, stride=1, padding=(k - 1) // 2)[0, 0]
    peaks = center * (pooled == center)
    scores, index = peaks.flatten().topk(min(max_proposals, h * w))
    keep = scores > threshold
    scores, index = scores[keep], index[keep]
    coords = torch.stack([index // w, index % w], dim=1)
    return coords, scores, peaks


def refine_quarter_pixel(heatmaps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Argmax of each [H, W] map plus the quarter-pixel shift of the release.

    ``heatmaps`` is [n, K, H, W]. For the argmax (x, y): x += 0.25·sign(M[y, x+1] − M[y, x−1]) and
    y += 0.25·sign(M[y+1, x] − M[y−1, x]), neighbours clamped to the map; there is no shift along x on the
    first/last column nor along y on the first/last row. Returns (xy [n, K, 2] float, peak values [n, K]).
    """
    n, k, h, w = heatmaps.shape
    flat = heatmaps.reshape(n, k, h * w)
    values, index = flat.max(dim=2)
    x, y = index % w, index // w

    def at(yy: torch.Tensor, xx: torch.Tensor) -> torch.Tensor:
        return flat.gather(2, (yy * w + xx)[..., None])[..., 0]

    dx = torch.sign(at(y, (x + 1).clamp(max=w - 1)) - at(y, (x - 1).clamp(min=0)))
    dy = torch.sign(at((y + 1).clamp(max=h - 1), x) - at((y - 1).clamp(min=0), x))
    dx = dx * ((x > 0) & (x < w - 1))
    dy = dy * ((y > 0) & (y < h - 1))
    xy = torch.stack([x.float() + 0.25 * dx, y.float() + 0.25 * dy], dim=-1)
    return xy, values


def map_to_image(xy_map: torch.Tensor, trans_inv: Any,
                 stride: int = OUTPUT_STRIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """Output-map (x, y) → input canvas (stride·x + stride/2) → original image via the 2×3 ``trans_inv``.

    Returns (canvas_xy, image_xy), both shaped like ``xy_map`` ([..., 2]).
    """
    m = _as_affine(trans_inv, "meta['trans_inv']").to(device=xy_map.device)
    canvas = xy_map.to(torch.float64) * stride + stride / 2
    image = canvas @ m[:, :2].T + m[:, 2]
    return canvas, image


def _as_affine(m: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(m, dtype=np.float64) if not torch.is_tensor(m) else m, dtype=torch.float64)
    if t.shape != (2, 3) or not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must be a finite 2x3 affine matrix, got shape {tuple(t.shape)}: {m!r}")
    return t.cpu()


def _check_flip_index(flip_index: Sequence[int], k: int) -> torch.Tensor:
    idx = torch.as_tensor(list(flip_index), dtype=torch.long)
    if idx.numel() != k or sorted(idx.tolist()) != list(range(k)):
        raise ValueError(f"flip_index {list(flip_index)} is not a permutation of the {k} keypoints")
    return idx


class _Clock:
    """Splits elapsed time into 'network' and 'decode' buckets; syncs CUDA before each reading."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.network = 0.0
        self.decode = 0.0
        self._last = self._now()

    def _now(self) -> float:
        if self.cuda:
            torch.cuda.synchronize()
        return time.perf_counter()

    def lap(self, bucket: str) -> None:
        now = self._now()
        setattr(self, bucket, getattr(self, bucket) + now - self._last)
        self._last = now


# ---- the decoder -----------------------------------------------------------------------------------------

@torch.no_grad()
def decode(runner: Runner | torch.nn.Module, image: torch.Tensor, meta: Mapping[str, Any], settings: DecodeSettings,
           *, image_id: int | None = None, return_intermediates: bool = False) -> DecodeResult:
    """Decode the people in one test image exactly as the release does (module docstring,
    docs/inference.md#decoding-steps).

    Args:
        runner: who runs the network, a :class:`~boir_core.engine.inference.backends.Runner` (``test.backend``,
            :func:`~boir_core.engine.inference.backends.make_runner`); a plain network (``features``, ``center_logits``,
            ``instance_heatmaps``, CONTRIBUTING.md) is run as the ``exact`` runner, in eval mode.
        image: [3, H', W'] normalised input canvas (a test sample's ``image``).
        meta: the test sample's ``meta``; only ``trans_inv`` (2×3, canvas → original pixels) is read,
            plus ``image_id`` when the argument is None.
        settings: the decoding settings (:func:`decode_settings_from_config` reads a config's;
            ``dataclasses.replace`` changes one):

            - ``flip_test``: average with the mirrored image (needs ``flip_index``: keypoint k of the mirrored
              image is keypoint ``flip_index[k]`` of the original);
            - ``max_proposals``, ``center_threshold``: top-k peaks kept above this center score;
            - ``center_pool_kernel``: smoothing kernel k of the center and keypoint maps (3; 11 for OCHuman);
            - ``oks_nms_threshold``: OKS above which a lower-scored pose is dropped (0.8; 0.7 for OCHuman);
            - ``oks_sigmas``: the K true OKS σ (pycocotools' values = release TEST.OKS_SIGMAS / 10).
        image_id: written into every result (default ``meta['image_id']``, else 0).
        return_intermediates: also return every step's maps (on the CPU) for teaching.
    """
    if not isinstance(settings, DecodeSettings):
        raise TypeError(f"decode's settings must be a DecodeSettings (decode_settings_from_config(cfg.test, ...)), "
                        f"got {type(settings).__name__}")
    flip_test = settings.flip_test
    trans_inv = _checked_inputs(image, meta, flip_test, settings.flip_index, settings.max_proposals)
    if image_id is None:
        image_id = meta.get("image_id", 0)

    net = as_runner(runner)
    device = net.device
    clock = _Clock(device)
    inter: dict[str, Any] = {} if return_intermediates else None  # type: ignore[assignment]

    # 1-3. batch [original, mirrored]; backbone, features flipped back, center logits (the runner's dense call).
    x = image.to(device=device, dtype=torch.float32)[None]
    if flip_test:
        x = torch.cat([x, torch.flip(x, dims=[3])], dim=0)
    clock.lap("decode")
    feats, center_logits = net.dense(x)
    clock.lap("network")
    center_raw = sigmoid_clamp(center_logits).mean(dim=0)[0]  # [H, W]
    h, w = center_raw.shape

    # 4-5. smoothing, max-pool NMS, top-k above threshold.
    center = smooth_heatmaps(center_raw, settings.center_pool_kernel)
    coords, center_scores, center_nms = find_peaks(center, settings.max_proposals, settings.center_threshold)
    n = coords.shape[0]
    if inter is not None:
        inter.update(center_raw=center_raw.cpu(), center_smoothed=center.cpu(), center_nms=center_nms.cpu(),
                     peak_kernel=peak_pool_kernel(h, w), peaks_yx=coords.cpu(), peak_scores=center_scores.cpu())
    if n == 0:
        clock.lap("decode")
        if inter is not None:
            inter.update(keep=torch.zeros(0, dtype=torch.long))
        return DecodeResult([], clock.network, clock.decode, 1, inter, str(device))

    # 6. instance heatmaps from both aligned maps at the same (y, x): every center in every view, view-major.
    clock.lap("decode")
    inst_logits = net.instances(feats, coords)
    clock.lap("network")
    inst = sigmoid_clamp(inst_logits)  # [views·n, K, H, W]

    # 7. flip average with the keypoint permutation.
    heat = _flip_average(inst, n, settings.flip_index if flip_test else None, inter)

    # 8-10. smoothing, argmax, quarter-pixel refinement, scores; back to the image; OKS-NMS.
    results = _poses(heat, center_scores, trans_inv, settings, int(image_id), inter)
    clock.lap("decode")
    return DecodeResult(results, clock.network, clock.decode, 1, inter, str(device))


def _checked_inputs(image: torch.Tensor, meta: Mapping[str, Any], flip_test: bool,
                    flip_index: Sequence[int] | None, max_proposals: int) -> torch.Tensor:
    """:func:`decode`'s arguments checked; returns ``meta['trans_inv']`` as a 2×3 float64 tensor."""
    if image.dim() != 3 or image.shape[0] != 3:
        raise ValueError(f"image must be a [3, H', W'] tensor, got {tuple(image.shape)}")
    if "trans_inv" not in meta:
        raise KeyError(f"meta has no 'trans_inv' (keys: {sorted(meta)}); it is the 2x3 canvas->image affine")
    trans_inv = _as_affine(meta["trans_inv"], "meta['trans_inv']")
    if flip_test and flip_index is None:
        raise ValueError("flip_test=True needs flip_index (the data-set profile's flip_index)")
    if max_proposals < 1:
        raise ValueError(f"max_proposals must be >= 1, got {max_proposals}")
    return trans_inv


def _flip_average(inst: torch.Tensor, n: int, flip_index: Sequence[int] | None,
                  inter: dict[str, Any] | None) -> torch.Tensor:
    """Step 7: the mean of the original view's and the mirrored view's maps, the mirrored ones' keypoints
    permuted by ``flip_index`` (None: no flip test, the maps as they are)."""
    if flip_index is None:
        if inter is not None:
            inter.update(instance_heatmaps_original=inst.cpu(), instance_heatmaps_mirrored=None)
        return inst
    perm = _check_flip_index(flip_index, inst.shape[1]).to(inst.device)
    original, mirrored = inst[:n], inst[n:][:, perm]
    if inter is not None:
        inter.update(instance_heatmaps_original=original.cpu(), instance_heatmaps_mirrored=mirrored.cpu())
    return (original + mirrored) / 2


def _poses(heat: torch.Tensor, center_scores: torch.Tensor, trans_inv: torch.Tensor, settings: DecodeSettings,
           image_id: int, inter: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Steps 8-10: the people's keypoints in image pixels and their scores, after OKS-NMS, as COCO results."""
    # 8. smoothing, argmax, quarter-pixel refinement, scores.
    heat_s = smooth_heatmaps(heat, settings.center_pool_kernel)
    xy_map, peak = refine_quarter_pixel(heat_s)
    kp_scores = peak * center_scores[:, None]  # [n, K]
    # 9. back to the original image; person score.
    xy_canvas, xy_image = map_to_image(xy_map, trans_inv)  # moves the affine to the maps' device
    poses = torch.cat([xy_image, kp_scores.to(torch.float64)[..., None]], dim=-1).cpu()  # [n, K, 3]
    person_scores = kp_scores.mean(dim=1).to(torch.float64).cpu()
    # 10. OKS-NMS in original pixels (it checks the K sigmas: release-scale ones are refused there).
    keep = oks_nms(poses, person_scores, settings.oks_sigmas, settings.oks_nms_threshold)
    if inter is not None:
        inter.update(instance_heatmaps=heat.cpu(), instance_heatmaps_smoothed=heat_s.cpu(),
                     keypoints_map=xy_map.cpu(), keypoints_canvas=xy_canvas.cpu(), keypoints_image=xy_image.cpu(),
                     keypoint_scores=kp_scores.cpu(), person_scores=person_scores, keep=keep)
    return [{"image_id": image_id, "category_id": 1,
             "keypoints": [float(v) for v in poses[i].flatten().tolist()], "score": float(person_scores[i])}
            for i in keep.tolist()]


def decode_batch(runner: Runner | torch.nn.Module, images: Sequence[torch.Tensor],
                 metas: Sequence[Mapping[str, Any]], settings: DecodeSettings, *,
                 image_ids: Sequence[int] | None = None, return_intermediates: bool = False) -> DecodeResult:
    """:func:`decode` over a list of images of different sizes (one forward pass each, as the release).

    Returns one :class:`DecodeResult` holding all poses, the summed times, ``num_images`` and, with
    ``return_intermediates``, a list of per-image dicts.
    """
    if len(images) != len(metas):
        raise ValueError(f"decode_batch: {len(images)} images but {len(metas)} metas")
    if image_ids is not None and len(image_ids) != len(images):
        raise ValueError(f"decode_batch: {len(images)} images but {len(image_ids)} image_ids")
    out = DecodeResult([], 0.0, 0.0, len(images), [] if return_intermediates else None)
    for i, (img, meta) in enumerate(zip(images, metas)):
        r = decode(runner, img, meta, settings, image_id=None if image_ids is None else image_ids[i],
                   return_intermediates=return_intermediates)
        out.poses.extend(r.poses)
        out.time_network += r.time_network
        out.time_decode += r.time_decode
        out.device = r.device
        if out.intermediates is not None:
            out.intermediates.append(r.intermediates)
    return out
