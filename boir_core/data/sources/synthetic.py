"""SynthCrowd: a small, embedded, procedurally drawn crowd data set in the real COCO / CrowdPose formats.

Why it exists
-------------
The paper trains on COCO (118k images) for 140 epochs on GPUs. A kit that should run on a laptop needs a data
set that (a) ships with no download, (b) is small enough to learn in minutes on a CPU, and (c) still has
what BoIR is about: *several people per image who overlap*, so that keypoints must be grouped into the right
instance. SynthCrowd draws such scenes and writes them in exactly the on-disk formats of the paper's data
sets, so every loader, target, loss and evaluator path of the kit runs unchanged on it.

What a scene looks like
-----------------------
Each person is an articulated 2-D stick figure with volume:

* a **skeleton** — pelvis, torso, neck, head, upper/lower arms and legs — whose joint angles are drawn from
  plausible ranges; a body *yaw* (which way the person faces) gives front, back and side views;
* **limbs** drawn as thick capsules with a dark outline, a per-person shirt / trouser / skin colour and a
  simple texture (plain, stripes or noise). The person's **left** limbs are a darker shade than the right
  ones and the face (eyes, nose, ears) is drawn when it faces the camera, so left and right are decidable,
  as they are for real people;
* several people per image at varied scales, placed near each other so that they **overlap**; a depth
  order decides who is in front; backgrounds are gradients, smooth noise and random clutter.

Annotations (COCO keypoint format)
----------------------------------
For each person ``keypoints`` holds ``(x, y, v)`` per keypoint, integer pixel coordinates, with

* ``v = 2``: labelled and visible;
* ``v = 1``: labelled but hidden behind **another person drawn in front** (the pixel lies on that person);
* ``v = 0``: not labelled (``x = y = 0``) — outside the image, or a face point on the far side of the head
  (the eyes and nose of someone seen from behind).

``bbox`` (xywh) and ``area`` are the extent and pixel count of the person's *visible* mask, ``segmentation``
its outer contours (``cv2.findContours``), ``num_keypoints`` the number with ``v > 0``, ``iscrowd`` 0.
Every image also carries CrowdPose's ``crowdIndex`` (see :func:`crowd_index`).

``num_keypoints=14`` writes the same images with CrowdPose's 14 keypoints (12 body joints, head top, neck)
and a CrowdPose-shaped JSON (no ``area``, no ``segmentation``, ``crowdIndex`` per image).

Layout on disk (the ``synthcrowd`` / ``synthcrowd14`` profiles of :mod:`boir_core.data.profiles`)::

    root/annotations/person_keypoints_{train,val}.json
    root/images/{train,val}/000001.jpg ...
    root/synthcrowd_complete.json      # written last: the generation arguments and a summary

A set is drawn into a temporary sibling folder (``.<name>.generating-<pid>-…``) and renamed into place when
complete, so an interrupted generation never leaves a half set at ``root`` (its temporary folder is removed
by the next generation once its process is gone). :func:`synthcrowd_state` tells a complete set from an
incomplete one (no completion marker, missing files: e.g. left by an older kit's interrupted run);
:func:`ensure_synthcrowd` regenerates an incomplete one and says why.

Every image is drawn from its own random stream seeded by ``(seed, split, index)``: the same arguments give
byte-identical files, and the first N images of a larger set equal those of a smaller one.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import cv2
import numpy as np

from boir_core.data.profiles import (
    COCO_KEYPOINTS,
    COCO_SKELETON,
    CROWDPOSE_KEYPOINTS,
    CROWDPOSE_SKELETON,
)
from boir_core.io import atomic_open

__all__ = [
    "DEFAULT_TRAIN",
    "DEFAULT_VAL",
    "DEFAULT_IMAGE_SIZE",
    "DEFAULT_MAX_PEOPLE",
    "DEFAULT_SEED",
    "DEFAULT_ROOT",
    "DEFAULT_ROOT_14",
    "MARKER_NAME",
    "GENERATOR_VERSION",
    "SynthPerson",
    "SynthScene",
    "render_scene",
    "person_annotation",
    "crowd_index",
    "category_for",
    "SynthCrowdSpec",
    "make_synthcrowd",
    "ensure_synthcrowd",
    "synthcrowd_state",
    "default_root",
]

#: Images in the default training / validation split.
DEFAULT_TRAIN = 2000
DEFAULT_VAL = 200
#: Each image's width and height are drawn independently from this range (pixels, inclusive).
DEFAULT_IMAGE_SIZE = (256, 320)
#: At most this many people per image (at least one).
DEFAULT_MAX_PEOPLE = 6
DEFAULT_SEED = 0
#: Default folders of the 17-keypoint (COCO-format) and 14-keypoint (CrowdPose-format) sets.
DEFAULT_ROOT = "data/synthcrowd"
DEFAULT_ROOT_14 = "data/synthcrowd14"
#: Written last into the root; holds the generation arguments. Its absence means "incomplete".
MARKER_NAME = "synthcrowd_complete.json"
#: Bump when the drawing changes, so that :func:`ensure_synthcrowd` regenerates old sets.
GENERATOR_VERSION = 2

SPLITS = ("train", "val")
_SPLIT_CODE = {"train": 0, "val": 1}
#: Image ids: train 1..N, val 1_000_001.. (unique across the two files).
_SPLIT_ID_BASE = {"train": 0, "val": 1_000_000}
_JPEG_QUALITY = 92

# The twelve body joints: a person counts as inside the image when one of them, or the head, is.
_BODY_JOINTS = (
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
    "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
)

# Body proportions as fractions of the standing height H (ankles to top of head).
_TORSO = 0.30          # pelvis centre -> shoulder centre
_NECK = 0.05           # shoulder centre -> bottom of the head
_HEAD_RY = 0.075       # head half-height
_HEAD_RX = 0.062       # head half-width
_UPPER_ARM, _FOREARM = 0.16, 0.14
_THIGH, _SHIN = 0.24, 0.23
_SHOULDER_HALF, _HIP_HALF = 0.12, 0.085
_R_UPPER_ARM, _R_FOREARM, _R_THIGH, _R_SHIN, _R_NECK = 0.036, 0.030, 0.052, 0.042, 0.030

# Face points in head units: (lateral a, forward b, up v). Lateral is the person's left.
# A point is labelled when it faces the camera: depth z = a*sin(yaw) - b*cos(yaw) below the threshold.
_FACE_GEOMETRY = {
    "nose": (0.0, 0.95, -0.10, 0.15),
    "left_eye": (0.42, 0.85, 0.20, 0.05),
    "right_eye": (-0.42, 0.85, 0.20, 0.05),
    "left_ear": (0.85, -0.05, 0.05, 0.45),
    "right_ear": (-0.85, -0.05, 0.05, 0.45),
}


# ---------------------------------------------------------------------------------------------------
# geometry helpers


def _dir(theta: float) -> np.ndarray:
    """Unit vector at angle ``theta`` (radians) from straight *down*, positive towards +x (image right)."""
    return np.array([math.sin(theta), math.cos(theta)])


def _ipt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


def _deg(lo: float, hi: float, rng: np.random.Generator) -> float:
    return math.radians(rng.uniform(lo, hi))


# ---------------------------------------------------------------------------------------------------
# one person


@dataclass
class SynthPerson:
    """One drawn person.

    ``points`` maps every keypoint name the generator knows (COCO's 17 plus CrowdPose's ``head`` and
    ``neck``) to integer pixel ``(x, y)``; ``labelled`` says whether the point would be annotated at all
    (False for face points turned away from the camera). ``full_mask`` is everything the person covers,
    ``visible_mask`` what is left of it after the people in front are drawn, ``front_mask`` the union of
    those people (all boolean, image-sized). ``depth``: larger is farther; people are drawn in decreasing
    depth.
    """

    points: dict[str, tuple[int, int]]
    labelled: dict[str, bool]
    height: float
    yaw: float
    depth: float
    full_mask: np.ndarray
    layer: np.ndarray = field(repr=False)  # colours of the person's box only, at ``offset``
    offset: tuple[int, int] = (0, 0)       # (x0, y0) of ``layer`` in the image
    visible_mask: np.ndarray | None = None
    front_mask: np.ndarray | None = None


@dataclass
class SynthScene:
    """An image (H x W x 3, uint8, **BGR** as OpenCV writes it) and its people, far to near."""

    image: np.ndarray
    people: list[SynthPerson]

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[1], self.image.shape[0]


def _random_colour(rng: np.random.Generator, sat: tuple[float, float], val: tuple[float, float],
                   hue: tuple[float, float] = (0.0, 180.0)) -> np.ndarray:
    hsv = np.array([[[rng.uniform(*hue), rng.uniform(*sat) * 255, rng.uniform(*val) * 255]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0].astype(np.float32)


def _skeleton(rng: np.random.Generator, pelvis: np.ndarray, height: float) -> tuple[dict, dict, dict]:
    """Sample a pose: joint positions (float), which face points are labelled, and drawing parameters."""
    H = height
    # which way the person faces: 55 % front, 20 % back, 25 % side views
    u = rng.random()
    if u < 0.55:
        yaw = rng.normal(0.0, math.radians(25))
    elif u < 0.75:
        yaw = math.pi + rng.normal(0.0, math.radians(25))
    else:
        yaw = rng.choice([-1.0, 1.0]) * math.pi / 2 + rng.normal(0.0, math.radians(15))
    cy, sy = math.cos(yaw), math.sin(yaw)
    lean = float(np.clip(rng.normal(0.0, math.radians(8)), -math.radians(25), math.radians(25)))
    down = _dir(lean)
    up = -down
    lateral = np.array([math.cos(lean), -math.sin(lean)])  # image "right" of the body axis

    p: dict[str, np.ndarray] = {}
    shoulder_c = pelvis + up * _TORSO * H
    p["left_shoulder"] = shoulder_c + lateral * cy * _SHOULDER_HALF * H
    p["right_shoulder"] = shoulder_c - lateral * cy * _SHOULDER_HALF * H
    p["left_hip"] = pelvis + lateral * cy * _HIP_HALF * H
    p["right_hip"] = pelvis - lateral * cy * _HIP_HALF * H

    side_view = abs(cy) < 0.4
    facing = 1.0 if sy >= 0 else -1.0  # image-x direction the person faces (side views)
    for side in ("left", "right"):
        s = (1.0 if cy >= 0 else -1.0) * (1.0 if side == "left" else -1.0)  # image side of this limb
        if side_view:
            a_up = lean + facing * _deg(-50, 100, rng)
            a_fore = a_up + facing * _deg(0, 120, rng)
            a_thigh = lean + facing * _deg(-35, 50, rng)
            a_shin = a_thigh - facing * _deg(0, 100, rng)
        else:
            abduct = _deg(5, 60, rng) if rng.random() < 0.6 else _deg(-15, 160, rng)
            a_up = lean + s * abduct
            a_fore = a_up + rng.choice([-1.0, 1.0]) * _deg(0, 140, rng)
            a_thigh = lean + s * (_deg(-5, 25, rng) if rng.random() < 0.85 else _deg(-10, 70, rng))
            a_shin = a_thigh + s * _deg(-30, 20, rng)
        p[f"{side}_elbow"] = p[f"{side}_shoulder"] + _dir(a_up) * _UPPER_ARM * H
        p[f"{side}_wrist"] = p[f"{side}_elbow"] + _dir(a_fore) * _FOREARM * H
        p[f"{side}_knee"] = p[f"{side}_hip"] + _dir(a_thigh) * _THIGH * H
        p[f"{side}_ankle"] = p[f"{side}_knee"] + _dir(a_shin) * _SHIN * H

    tilt = lean + rng.normal(0.0, math.radians(10))
    head_up = -_dir(tilt)
    head_lat = np.array([math.cos(tilt), -math.sin(tilt)])
    neck_top = shoulder_c + up * _NECK * H
    rx, ry = _HEAD_RX * H, _HEAD_RY * H
    head_c = neck_top + head_up * ry * 0.95
    p["neck"] = shoulder_c + up * 0.3 * _NECK * H
    p["head"] = head_c + head_up * ry * 0.8  # CrowdPose's "head" is the top of the head

    labelled = {name: True for name in p}
    for name, (a, b, v, z_max) in _FACE_GEOMETRY.items():
        p[name] = head_c + head_lat * (a * cy + b * sy) * rx + head_up * v * ry
        labelled[name] = (a * sy - b * cy) < z_max

    draw = dict(yaw=yaw, cy=cy, sy=sy, lean=lean, tilt=tilt, shoulder_c=shoulder_c, pelvis=pelvis,
                neck_top=neck_top, head_c=head_c, rx=rx, ry=ry, lateral=lateral, up=up)
    return p, labelled, draw


def _texture(rng: np.random.Generator, shape: tuple[int, int], scale: float) -> np.ndarray:
    """A multiplicative texture (H x W float32 around 1): plain, stripes or smooth noise."""
    kind = rng.integers(0, 3)
    if kind == 0:
        return np.ones(shape, np.float32)
    if kind == 1:
        period = max(3.0, scale * rng.uniform(0.03, 0.08))
        ang = rng.uniform(0, math.pi)
        yy = np.arange(shape[0], dtype=np.float32)[:, None]
        xx = np.arange(shape[1], dtype=np.float32)[None, :]
        phase = (xx * math.cos(ang) + yy * math.sin(ang)) / period
        return np.where(np.sin(2 * math.pi * phase) > 0, 1.0, rng.uniform(0.55, 0.8)).astype(np.float32)
    small = rng.uniform(0.7, 1.3, size=(max(2, shape[0] // 8), max(2, shape[1] // 8))).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)


def _draw_person(rng: np.random.Generator, size: tuple[int, int], p: dict, draw: dict,
                 height: float) -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict[str, tuple[int, int]]]:
    """Paint one person on an empty canvas covering the person's box.

    Returns (colour layer, mask, offset (x0, y0) of the canvas in the image, integer keypoints in image
    pixels). Drawing only the box keeps a scene at a few milliseconds.
    """
    painter = _PersonPainter(rng, size, p, draw, height)
    painter.paint()
    return painter.finish()


class _PersonPainter:
    """One person's canvas (the person's box plus a margin): colour layer, mask and textured regions, painted
    part by part in the painter's order (far-side limbs first). The random draws happen in a fixed order (the
    five colours here, then each region's texture), so a seed gives the same person."""

    LEFT_SHADE = 0.62  # the person's left limbs are darker: a left/right cue a small CNN can learn

    def __init__(self, rng: np.random.Generator, size: tuple[int, int], p: dict, draw: dict, height: float):
        W, Himg = size
        self.rng, self.H = rng, height
        allp = np.array(list(p.values()))
        pad = int(math.ceil(0.16 * height)) + 4
        x0 = int(np.clip(math.floor(allp[:, 0].min()) - pad, 0, W))
        y0 = int(np.clip(math.floor(allp[:, 1].min()) - pad, 0, Himg))
        x1 = int(np.clip(math.ceil(allp[:, 0].max()) + pad + 1, 0, W))
        y1 = int(np.clip(math.ceil(allp[:, 1].max()) + pad + 1, 0, Himg))
        off = np.array([x0, y0], dtype=np.float64)
        self.x0, self.y0 = x0, y0
        self.cw, self.ch = max(0, x1 - x0), max(0, y1 - y0)
        # work in canvas coordinates
        self.p = {k: v - off for k, v in p.items()}
        self.draw = {**draw, **{k: draw[k] - off for k in ("shoulder_c", "pelvis", "neck_top", "head_c")}}
        self.layer = np.zeros((self.ch, self.cw, 3), np.float32)
        self.mask = np.zeros((self.ch, self.cw), np.uint8)
        self.region = np.zeros((self.ch, self.cw), np.uint8)  # 1 = shirt, 2 = trousers (textured)
        self.pts = {k: _ipt(v) for k, v in self.p.items()}
        self.labelled = draw["labelled"]
        self.skin = _random_colour(rng, (0.25, 0.6), (0.35, 0.95), (5, 25))
        self.shirt = _random_colour(rng, (0.3, 1.0), (0.3, 1.0))
        self.trousers = _random_colour(rng, (0.2, 0.9), (0.2, 0.8))
        self.hair = _random_colour(rng, (0.2, 0.8), (0.05, 0.35))
        self.shoe = _random_colour(rng, (0.0, 0.5), (0.05, 0.3))

    def rad(self, f: float) -> int:
        return max(1, int(round(f * self.H)))

    def capsule(self, a: tuple[int, int], b: tuple[int, int], r: int, colour: np.ndarray, reg: int = 0) -> None:
        cv2.line(self.layer, a, b, (colour * 0.35).tolist(), 2 * r + 3)
        cv2.line(self.mask, a, b, 1, 2 * r + 3)
        cv2.line(self.layer, a, b, colour.tolist(), 2 * r + 1)
        cv2.line(self.region, a, b, reg, 2 * r + 1)

    def ellipse(self, c: tuple[int, int], axes: tuple[int, int], ang_deg: float, colour: np.ndarray) -> None:
        outer = (axes[0] + 1, axes[1] + 1)
        cv2.ellipse(self.layer, c, outer, ang_deg, 0, 360, (colour * 0.35).tolist(), -1)
        cv2.ellipse(self.mask, c, outer, ang_deg, 0, 360, 1, -1)
        cv2.ellipse(self.layer, c, axes, ang_deg, 0, 360, colour.tolist(), -1)
        cv2.ellipse(self.mask, c, axes, ang_deg, 0, 360, 1, -1)
        cv2.ellipse(self.region, c, axes, ang_deg, 0, 360, 0, -1)

    def torso(self) -> None:
        d, H, lat = self.draw, self.H, self.draw["lateral"]
        ws = max(abs(d["cy"]) * _SHOULDER_HALF, 0.06) * H
        wh = max(abs(d["cy"]) * _HIP_HALF, 0.055) * H
        sc, pc = d["shoulder_c"], d["pelvis"]
        quad = np.round(np.array([sc + lat * ws, sc - lat * ws, pc - lat * wh, pc + lat * wh])).astype(np.int32)
        cv2.fillConvexPoly(self.mask, quad, 1)
        cv2.polylines(self.mask, [quad], True, 1, 3)
        cv2.fillConvexPoly(self.layer, quad, self.shirt.tolist())
        cv2.polylines(self.layer, [quad], True, (self.shirt * 0.35).tolist(), 3)
        cv2.fillConvexPoly(self.region, quad, 1)
        # the waist band separates shirt and trousers
        cv2.line(self.layer, _ipt(pc + lat * wh), _ipt(pc - lat * wh), self.trousers.tolist(), self.rad(0.03))
        self.capsule(self.pts["left_hip"], self.pts["right_hip"], self.rad(0.03), self.trousers, 2)

    def neck(self) -> None:
        d = self.draw
        self.capsule(_ipt(d["shoulder_c"]), _ipt(d["neck_top"] + d["up"] * 0.3 * d["ry"]), self.rad(_R_NECK),
                     self.skin)

    def head(self) -> None:
        d, layer, lab = self.draw, self.layer, self.labelled
        c = _ipt(d["head_c"])
        axes = (max(1, int(round(d["rx"]))), max(1, int(round(d["ry"]))))
        ang = -math.degrees(d["tilt"])
        facing_camera = d["cy"] > -0.2
        self.ellipse(c, axes, ang, self.skin if facing_camera else self.hair)
        if not facing_camera:
            return
        cv2.ellipse(layer, c, axes, ang, 180, 360, self.hair.tolist(), -1)  # hair on the top half
        for ear in ("left_ear", "right_ear"):
            if lab[ear]:
                cv2.circle(layer, self.pts[ear], max(1, int(round(0.2 * d["rx"]))), (self.skin * 0.8).tolist(), -1)
        for eye in ("left_eye", "right_eye"):
            if lab[eye]:
                cv2.circle(layer, self.pts[eye], max(1, int(round(0.14 * d["rx"]))), (25, 25, 25), -1)
        if lab["nose"]:
            cv2.circle(layer, self.pts["nose"], max(1, int(round(0.16 * d["rx"]))), (60, 60, 170), -1)

    def limb(self, side: str, joints: tuple[str, str, str], radii: tuple[float, float],
             colours: tuple[np.ndarray, np.ndarray, np.ndarray], regions: tuple[int, int],
             end: tuple[float, float, float]) -> None:
        """An arm or a leg: two capsules (upper, lower) and a disc past the last joint (hand or foot); ``end``:
        (how far past the joint, as a share of the lower segment; radius; the disc colour's shade)."""
        shade = self.LEFT_SHADE if side == "left" else 1.0
        a, b, c = (self.pts[f"{side}_{j}"] for j in joints)
        self.capsule(a, b, self.rad(radii[0]), colours[0] * shade, regions[0])
        self.capsule(b, c, self.rad(radii[1]), colours[1] * shade, regions[1])
        pb, pc = self.p[f"{side}_{joints[1]}"], self.p[f"{side}_{joints[2]}"]
        tip = _ipt(pc + (pc - pb) * end[0])
        cv2.circle(self.layer, tip, self.rad(end[1]), (colours[2] * shade * end[2]).tolist(), -1)
        cv2.circle(self.mask, tip, self.rad(end[1]), 1, -1)

    def arm(self, side: str) -> None:
        self.limb(side, ("shoulder", "elbow", "wrist"), (_R_UPPER_ARM, _R_FOREARM),
                  (self.shirt, self.skin, self.skin), (1, 0), (0.25, 0.032, 0.9))

    def leg(self, side: str) -> None:
        self.limb(side, ("hip", "knee", "ankle"), (_R_THIGH, _R_SHIN), (self.trousers, self.trousers, self.shoe),
                  (2, 2), (0.12, 0.035, 1.0))

    def paint(self) -> None:
        sy = self.draw["sy"]
        # painter's order inside the person: far-side limbs first, near-side limbs last
        parts = [
            (sy * 0.8 + 0.05, lambda: self.leg("left")), (-sy * 0.8 + 0.05, lambda: self.leg("right")),
            (sy * 1.0 - 0.2, lambda: self.arm("left")), (-sy * 1.0 - 0.2, lambda: self.arm("right")),
            (0.0, self.torso), (0.02, self.neck), (-0.1, self.head),
        ]
        parts.sort(key=lambda t: -t[0])
        if self.cw and self.ch:
            for _, fn in parts:
                fn()
        # textures on shirt and trousers, computed only inside the person's box
        for r in (1, 2):
            sel = self.region == r
            if sel.any():
                tex = _texture(self.rng, sel.shape, self.H)
                self.layer[sel] *= tex[sel][:, None]

    def finish(self) -> tuple[np.ndarray, np.ndarray, tuple[int, int], dict[str, tuple[int, int]]]:
        """Every labelled keypoint on the person (tiny heads can round a face point off the ellipse); the
        keypoints back in image pixels."""
        mask, layer = self.mask, self.layer
        for name, (x, y) in self.pts.items():
            if self.labelled.get(name, True) and 0 <= x < self.cw and 0 <= y < self.ch and not mask[y, x]:
                mask[y, x] = 1
                layer[y, x] = self.skin
        pts = {k: (x + self.x0, y + self.y0) for k, (x, y) in self.pts.items()}
        return layer, mask, (self.x0, self.y0), pts


def _background(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Gradient, smooth colour noise and random clutter (rectangles, circles, lines, polygons)."""
    W, H = size
    c0, c1 = _random_colour(rng, (0, 0.7), (0.2, 1.0)), _random_colour(rng, (0, 0.7), (0.2, 1.0))
    ang = rng.uniform(0, 2 * math.pi)
    yy = np.arange(H, dtype=np.float32)[:, None]
    xx = np.arange(W, dtype=np.float32)[None, :]
    t = (xx * math.cos(ang) + yy * math.sin(ang))
    t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    if rng.random() < 0.6:  # smooth colour noise
        g = int(rng.integers(3, 12))
        small = rng.uniform(-60, 60, size=(g, g, 3)).astype(np.float32)
        img += cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.7:  # clutter
        for _ in range(int(rng.integers(3, 25))):
            col = _random_colour(rng, (0, 1), (0.1, 1)).tolist()
            kind = rng.integers(0, 4)
            x, y = int(rng.integers(0, W)), int(rng.integers(0, H))
            if kind == 0:
                cv2.rectangle(img, (x, y), (x + int(rng.integers(5, W // 3)), y + int(rng.integers(5, H // 3))),
                              col, -1 if rng.random() < 0.7 else 2)
            elif kind == 1:
                cv2.circle(img, (x, y), int(rng.integers(3, min(W, H) // 6)), col, -1 if rng.random() < 0.7 else 2)
            elif kind == 2:
                cv2.line(img, (x, y), (int(rng.integers(0, W)), int(rng.integers(0, H))), col,
                         int(rng.integers(1, 6)))
            else:
                poly = np.stack([rng.integers(0, W, 3), rng.integers(0, H, 3)], 1).astype(np.int32)
                cv2.fillConvexPoly(img, poly, col)
        if rng.random() < 0.5:
            img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.8, 2.5))
    return img


def _visibility(people: list[SynthPerson]) -> None:
    """Fill each person's front and visible masks; ``people`` must be sorted far to near."""
    front = np.zeros_like(people[0].full_mask, dtype=bool) if people else None
    for person in reversed(people):
        person.front_mask = front.copy()
        person.visible_mask = person.full_mask & ~front
        front |= person.full_mask


def render_scene(seed: int | Sequence[int] | np.random.Generator, width: int = 288, height: int = 288,
                 max_people: int = DEFAULT_MAX_PEOPLE, min_visible: float = 0.4) -> SynthScene:
    """Draw one crowd scene.

    ``seed`` may be an int, a sequence of ints (mixed into one stream) or a ``numpy`` Generator.
    1..``max_people`` people are placed, each new one near an existing one with probability 0.5 so that
    people overlap; a placement that would leave anyone with less than ``min_visible`` of their pixels
    visible is redrawn (so that every annotated person can still be seen).
    """
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people}")
    if width < 32 or height < 32:
        raise ValueError(f"image size must be at least 32 x 32 pixels, got {width} x {height}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    size = (int(width), int(height))
    short = min(size)
    target = int(rng.integers(1, max_people + 1))
    people: list[SynthPerson] = []
    for _attempt in range(6 * target):
        if len(people) == target:
            break
        # standing height: mostly 0.4-0.9 of the short side, sometimes small
        frac = rng.uniform(0.4, 0.9) if rng.random() < 0.8 else rng.uniform(0.18, 0.4)
        H = frac * short
        if people and rng.random() < 0.5:
            other = people[int(rng.integers(0, len(people)))]
            ox, oy = (np.array(other.points["left_hip"]) + np.array(other.points["right_hip"])) / 2
            px = ox + rng.normal(0, 0.35 * other.height)
            py = oy + rng.normal(0, 0.08 * other.height) + 0.3 * (H - other.height)
        else:
            px = rng.uniform(0.1, 0.9) * size[0]
            lo, hi = 0.48 * H, size[1] - 0.45 * H
            py = rng.uniform(lo, hi) if hi > lo else size[1] / 2
        pos, labelled, draw = _skeleton(rng, np.array([px, py]), H)
        draw["labelled"] = labelled
        inside = sum(0 <= pos[j][0] < size[0] and 0 <= pos[j][1] < size[1] for j in _BODY_JOINTS + ("head",))
        if inside < 9:
            continue
        layer, mask, (x0, y0), pts = _draw_person(rng, size, pos, draw, H)
        full = np.zeros((size[1], size[0]), bool)
        full[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]] = mask.astype(bool)
        # bigger people are more often in front (smaller depth)
        depth = -frac + rng.normal(0, 0.15)
        cand = SynthPerson(points=pts, labelled=labelled, height=H, yaw=draw["yaw"], depth=depth,
                           full_mask=full, layer=layer, offset=(x0, y0))
        cand_area = int(np.count_nonzero(mask))
        if cand_area == 0:
            continue
        trial = sorted(people + [cand], key=lambda q: -q.depth)
        _visibility(trial)
        if all(np.count_nonzero(q.visible_mask) >= min_visible * max(1, np.count_nonzero(q.full_mask))
               for q in trial):
            people = trial
    _visibility(people)

    img = _background(rng, size)
    for person in people:  # far to near
        x0, y0 = person.offset
        h, w = person.layer.shape[:2]
        m = person.full_mask[y0:y0 + h, x0:x0 + w]
        img[y0:y0 + h, x0:x0 + w][m] = person.layer[m]
    img += rng.standard_normal(size=img.shape, dtype=np.float32) * np.float32(rng.uniform(1, 6))
    if rng.random() < 0.25:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return SynthScene(image=np.clip(img, 0, 255).astype(np.uint8), people=people)


# ---------------------------------------------------------------------------------------------------
# annotations


def _keypoint_names(num_keypoints: int) -> tuple[str, ...]:
    if num_keypoints == 17:
        return COCO_KEYPOINTS
    if num_keypoints == 14:
        return CROWDPOSE_KEYPOINTS
    raise ValueError(f"num_keypoints must be 17 (COCO format) or 14 (CrowdPose format), got {num_keypoints!r}")


def category_for(num_keypoints: int) -> dict[str, Any]:
    """The ``person`` category entry: COCO's names and 1-based skeleton, or CrowdPose's."""
    names = _keypoint_names(num_keypoints)
    skeleton = COCO_SKELETON if num_keypoints == 17 else CROWDPOSE_SKELETON
    return {"supercategory": "person", "id": 1, "name": "person", "keypoints": list(names),
            "skeleton": [[a + 1, b + 1] for a, b in skeleton]}


def _polygons(mask: np.ndarray) -> list[list[float]]:
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [c.reshape(-1).astype(float).tolist() for c in contours if len(c) >= 3]
    return polys


def person_annotation(person: SynthPerson, image_size: tuple[int, int], num_keypoints: int = 17) -> dict:
    """The COCO-style annotation of one person (no ``id`` / ``image_id`` yet).

    Keys: ``keypoints`` (flat x, y, v), ``num_keypoints``, ``bbox`` (visible extent, xywh), ``area``
    (visible pixels) and ``segmentation`` (visible outer contours), ``iscrowd`` 0, ``category_id`` 1.
    """
    W, H = image_size
    kps: list[int] = []
    for name in _keypoint_names(num_keypoints):
        x, y = person.points[name]
        if not person.labelled.get(name, True) or not (0 <= x < W and 0 <= y < H):
            kps += [0, 0, 0]
        elif person.front_mask[y, x]:
            kps += [x, y, 1]
        else:
            kps += [x, y, 2]
    vis = person.visible_mask.astype(np.uint8)
    area = int(cv2.countNonZero(vis))
    bx, by, bw, bh = cv2.boundingRect(vis) if area else (0, 0, 0, 0)
    bbox = [float(bx), float(by), float(bw), float(bh)]
    polys = _polygons(vis) if area else []
    if not polys and area:
        x0, y0, w, h = bbox
        polys = [[x0, y0, x0 + w - 1, y0, x0 + w - 1, y0 + h - 1, x0, y0 + h - 1]]
    return {
        "category_id": 1,
        "iscrowd": 0,
        "keypoints": kps,
        "num_keypoints": int(sum(1 for v in kps[2::3] if v > 0)),
        "bbox": bbox,
        "area": float(area),
        "segmentation": polys,
    }


def crowd_index(annotations: Iterable[dict], num_keypoints: int | None = None) -> float:
    """CrowdPose's crowd index of one image.

    For each person i with N_a(i) > 0 labelled keypoints, N_b(i) counts the labelled keypoints of *other*
    people that fall inside i's box; the index is the mean of N_b(i) / N_a(i) over those people (0 for an
    image with none). CrowdPose calls images with index < 0.2 easy, < 0.8 medium, the rest hard.
    """
    anns = [a for a in annotations if not a.get("iscrowd", 0)]
    kps = [np.asarray(a["keypoints"], dtype=np.float64).reshape(-1, 3) for a in anns]
    if num_keypoints is not None and any(len(k) != num_keypoints for k in kps):
        raise ValueError(f"crowd_index: expected {num_keypoints} keypoints per person")
    ratios = []
    for i, a in enumerate(anns):
        own = kps[i][:, 2] > 0
        if not own.any():
            continue
        x, y, w, h = a["bbox"]
        n_b = 0
        for j, other in enumerate(kps):
            if j == i:
                continue
            lab = other[other[:, 2] > 0]
            n_b += int(((lab[:, 0] >= x) & (lab[:, 0] <= x + w) & (lab[:, 1] >= y) & (lab[:, 1] <= y + h)).sum())
        ratios.append(n_b / own.sum())
    return float(np.mean(ratios)) if ratios else 0.0


# ---------------------------------------------------------------------------------------------------
# writing a data set


def _atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def _atomic_write_json(path: Path, obj: Any) -> None:
    """Compact JSON (as COCO's files are), written atomically."""
    _atomic_write_bytes(path, json.dumps(obj, separators=(",", ":"), allow_nan=False).encode())


def _check_args(num_train: int, num_val: int, image_size: Sequence[int], max_people: int) -> tuple[int, int]:
    for name, v in (("num_train", num_train), ("num_val", num_val)):
        if not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {v!r}")
    if len(image_size) != 2 or not (32 <= int(image_size[0]) <= int(image_size[1])):
        raise ValueError(f"image_size must be (min, max) with 32 <= min <= max, got {tuple(image_size)!r}")
    if max_people < 1:
        raise ValueError(f"max_people must be >= 1, got {max_people!r}")
    return int(image_size[0]), int(image_size[1])


@dataclass(frozen=True)
class SynthCrowdSpec:
    """What a SynthCrowd set is drawn with: the generation arguments its marker records (module notes).

    ``num_train`` / ``num_val``: images per split; ``seed``: the random streams (image i of a split is drawn
    from ``(seed, split, i)``); ``num_keypoints``: 17 (COCO format) or 14 (CrowdPose format); ``image_size``:
    (min, max) pixels, each image's width and height drawn from it; ``max_people``: at most this many people
    per image. Checked when made (a ValueError names the argument); ``image_size`` becomes an int pair.
    """

    num_train: int = DEFAULT_TRAIN
    num_val: int = DEFAULT_VAL
    seed: int = DEFAULT_SEED
    num_keypoints: int = 17
    image_size: Sequence[int] = DEFAULT_IMAGE_SIZE
    max_people: int = DEFAULT_MAX_PEOPLE

    def __post_init__(self) -> None:
        _keypoint_names(self.num_keypoints)
        object.__setattr__(self, "image_size",
                           _check_args(self.num_train, self.num_val, self.image_size, self.max_people))

    def record(self) -> dict[str, Any]:
        """The arguments as the completion marker stores them (with the generator version)."""
        return {"version": GENERATOR_VERSION, "num_train": int(self.num_train), "num_val": int(self.num_val),
                "seed": int(self.seed), "num_keypoints": int(self.num_keypoints),
                "image_size": [int(self.image_size[0]), int(self.image_size[1])],
                "max_people": int(self.max_people)}


def _generate_split(root: Path, split: str, count: int, spec: SynthCrowdSpec) -> dict[str, Any]:
    seed, num_keypoints, image_size = int(spec.seed), spec.num_keypoints, spec.image_size
    img_dir = root / "images" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    ann_id = 0
    for i in range(count):
        rng = np.random.default_rng([seed, _SPLIT_CODE[split], i])
        w = int(rng.integers(image_size[0], image_size[1] + 1))
        h = int(rng.integers(image_size[0], image_size[1] + 1))
        scene = render_scene(rng, w, h, int(spec.max_people))
        image_id = _SPLIT_ID_BASE[split] + i + 1
        file_name = f"{i + 1:06d}.jpg"
        ok, buf = cv2.imencode(".jpg", scene.image, [cv2.IMWRITE_JPEG_QUALITY, _JPEG_QUALITY])
        if not ok:  # pragma: no cover
            raise RuntimeError(f"could not encode {img_dir / file_name}")
        _atomic_write_bytes(img_dir / file_name, buf.tobytes())
        anns = [person_annotation(p, (w, h), num_keypoints) for p in scene.people]
        anns = [a for a in anns if a["area"] > 0]
        if num_keypoints == 14:  # CrowdPose's annotations carry neither area nor segmentation
            for a in anns:
                del a["area"], a["segmentation"]
        for a in anns:
            ann_id += 1
            annotations.append({"id": ann_id, "image_id": image_id, **a})
        images.append({"id": image_id, "file_name": file_name, "width": w, "height": h,
                       "crowdIndex": round(crowd_index(anns), 4)})
    # the description is part of the files written: the module's first path, so SynthCrowd stays byte-identical
    info = {"description": f"SynthCrowd {split} ({num_keypoints} keypoints), drawn by boir_core.data.synthetic",
            "version": str(GENERATOR_VERSION), "seed": int(seed), "split": split}
    data = {"info": info, "licenses": [], "images": images, "annotations": annotations,
            "categories": [category_for(num_keypoints)]}
    ann_file = root / "annotations" / f"person_keypoints_{split}.json"
    _atomic_write_json(ann_file, data)
    return {"annotations": str(ann_file), "images": str(img_dir), "num_images": len(images),
            "num_people": len(annotations)}


_PARTIAL = ".generating-"  # the temporary sibling folder: .<name>.generating-<pid>-<random>


def _partial_prefix(root: Path) -> str:
    return f".{root.name}{_PARTIAL}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _remove_stale_partials(root: Path) -> None:
    """Remove the temporary folders of generations into ``root`` whose process is gone (killed mid-way)."""
    prefix = _partial_prefix(root)
    if not root.parent.is_dir():
        return
    for d in root.parent.iterdir():
        m = re.fullmatch(re.escape(prefix) + r"(\d+)-.*", d.name)
        if m and d.is_dir() and not _alive(int(m.group(1))):
            shutil.rmtree(d, ignore_errors=True)


def _install(tmp: Path, root: Path, summary: dict[str, Any]) -> None:
    """Move the complete set drawn in ``tmp`` to ``root``, the marker last.

    A new (or empty) ``root``: one rename, the set appears at once. An existing folder (an older set, or a
    folder that also holds other files): the marker goes first, then SynthCrowd's own files are replaced
    (every ``*.jpg`` of ``images/{train,val}`` and the two annotation files; nothing else is touched), then
    the new marker is written, so an interruption leaves a set that :func:`synthcrowd_state` calls incomplete.
    """
    if root.is_dir() and not any(root.iterdir()):
        root.rmdir()
    if not root.exists():
        _atomic_write_json(tmp / MARKER_NAME, summary)
        os.rename(tmp, root)
        return
    marker = root / MARKER_NAME
    if marker.exists():
        marker.unlink()
    for split in SPLITS:
        dst = root / "images" / split
        dst.mkdir(parents=True, exist_ok=True)
        for old in dst.glob("*.jpg"):  # a previous, different set
            old.unlink()
        for f in (tmp / "images" / split).iterdir():
            os.replace(f, dst / f.name)
        (root / "annotations").mkdir(exist_ok=True)
        name = f"person_keypoints_{split}.json"
        os.replace(tmp / "annotations" / name, root / "annotations" / name)
    _atomic_write_json(marker, summary)


def make_synthcrowd(out_dir: str | os.PathLike = DEFAULT_ROOT, spec: SynthCrowdSpec = SynthCrowdSpec(),
                    ) -> dict[str, Any]:
    """Generate SynthCrowd as ``spec`` says into ``out_dir`` (always regenerates; see :func:`ensure_synthcrowd`).

    The set is drawn into a temporary sibling folder and moved into ``out_dir`` when complete (module notes),
    so an interruption leaves ``out_dir`` as it was. Returns a summary: ``root``, per split the annotation
    file, image folder, image and person counts, the generation ``args`` and the ``seconds`` it took. The
    marker file is written last.
    """
    root = Path(out_dir)
    root.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(root)
    tmp = Path(tempfile.mkdtemp(prefix=f"{_partial_prefix(root)}{os.getpid()}-", dir=root.parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)  # mkdtemp makes a private folder; the set gets the usual permissions
    try:
        t0 = time.perf_counter()
        args = spec.record()
        splits = {}
        for split, count in (("train", spec.num_train), ("val", spec.num_val)):
            s = _generate_split(tmp, split, int(count), spec)
            splits[split] = {**s, "annotations": str(root / Path(s["annotations"]).relative_to(tmp)),
                             "images": str(root / Path(s["images"]).relative_to(tmp))}
        summary = {"root": str(root), "args": args, "splits": splits,
                   "seconds": round(time.perf_counter() - t0, 2)}
        _install(tmp, root, summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already when it was renamed into place
    return summary


def default_root(num_keypoints: int = 17) -> str:
    """``data/synthcrowd`` for 17 keypoints, ``data/synthcrowd14`` for 14."""
    _keypoint_names(num_keypoints)
    return DEFAULT_ROOT if num_keypoints == 17 else DEFAULT_ROOT_14


def ensure_synthcrowd(root: str | os.PathLike | None = None, spec: SynthCrowdSpec = SynthCrowdSpec(),
                      ) -> dict[str, Any]:
    """Generate SynthCrowd as ``spec`` says under ``root`` (default: :func:`default_root` of its keypoint count)
    unless a complete set with the same arguments is already there.

    "Complete" means: the marker file exists and records exactly these arguments (and generator version),
    both annotation files exist and each image folder holds the expected number of JPEGs. Anything else
    (a changed argument, an interrupted run) regenerates. Returns the summary; ``generated`` says which and
    ``reason`` why (None when nothing was generated).
    """
    root = Path(root if root is not None else default_root(spec.num_keypoints))
    want = spec.record()
    state, detail, summary = _state(root)
    if state == "complete" and summary.get("args") == want:
        return {**summary, "generated": False, "reason": None}
    reason = ("it was made with other arguments" if state == "complete" else
              "nothing there" if state in ("missing", "empty") else
              f"no complete SynthCrowd there: {detail}")
    summary = make_synthcrowd(root, spec)
    return {**summary, "generated": True, "reason": reason}


def synthcrowd_state(root: str | os.PathLike) -> tuple[str, str]:
    """What lies at ``root``: ``(state, detail)`` with state

    - ``"missing"``: no such folder; ``"empty"``: an empty folder;
    - ``"complete"``: a complete set (its marker, and every file it lists);
    - ``"incomplete"``: SynthCrowd's marker without all its files, or SynthCrowd's files (only those) without
      the marker and without an annotation file, e.g. left by an interrupted generation of an older kit (it
      wrote each split's annotation file after its images, the marker last); ``detail`` says what is missing;
    - ``"other"``: a folder that holds something else, or both annotation files without the marker (someone's
      own data in SynthCrowd's layout): :func:`prepare_demo_data <boir_core.engine.evaluation.runner.prepare_demo_data>`
      uses it as it is.
    """
    state, detail, _ = _state(Path(root))
    return state, detail


def _state(root: Path) -> tuple[str, str, dict[str, Any]]:
    if not root.exists():
        return "missing", "no such folder", {}
    if not root.is_dir():
        return "other", "not a folder", {}
    if not any(root.iterdir()):
        return "empty", "an empty folder", {}
    marker = root / MARKER_NAME
    if marker.is_file():
        try:
            summary = json.loads(marker.read_text())
            args = summary["args"]
            missing = _missing(root, args)
        except (OSError, ValueError, TypeError, KeyError):
            return "incomplete", f"an unreadable completion marker {MARKER_NAME}", {}
        if missing:
            return "incomplete", missing, summary
        return "complete", "", summary
    lacking = [f"annotations/person_keypoints_{s}.json" for s in SPLITS
               if not (root / "annotations" / f"person_keypoints_{s}.json").is_file()]
    if lacking and _only_synthcrowd_files(root):
        return "incomplete", f"no completion marker {MARKER_NAME}, no {' or '.join(lacking)}", {}
    return "other", f"a folder without SynthCrowd's completion marker {MARKER_NAME}", {}


def _only_synthcrowd_files(root: Path) -> bool:
    """``root`` holds nothing but what the generator writes (dot files aside: temporary files)."""
    def names(d: Path) -> list[str]:
        return [e.name for e in os.scandir(d) if not e.name.startswith(".")] if d.is_dir() else []

    if not set(names(root)) <= {"annotations", "images"}:
        return False
    if not set(names(root / "annotations")) <= {f"person_keypoints_{s}.json" for s in SPLITS}:
        return False
    if not set(names(root / "images")) <= set(SPLITS):
        return False
    return all(re.fullmatch(r"\d{6}\.jpg", n) for s in SPLITS for n in names(root / "images" / s))


def _missing(root: Path, args: dict[str, Any]) -> str:
    """What a complete set made with ``args`` lacks at ``root`` ("" when nothing)."""
    for split, count in (("train", args["num_train"]), ("val", args["num_val"])):
        ann = root / "annotations" / f"person_keypoints_{split}.json"
        if not ann.is_file():
            return f"{ann} is missing"
        img_dir = root / "images" / split
        n = sum(1 for e in os.scandir(img_dir) if e.name.endswith(".jpg")) if img_dir.is_dir() else 0
        if n != count:
            return f"{img_dir} holds {n} of its {count} images"
    return ""
