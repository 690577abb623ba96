"""Helpers of the deployment tests (a plain module: ``conftest`` is a name every test folder has)."""
from __future__ import annotations

import numpy as np
import torch

from boir_core.engine.inference.backends import Runner


class NumpyNet:
    """The plain (eager, fp32) torch model behind the two numpy calls of boir_core.deploy.decode_np: the same
    network outputs torch's ``decode(model, ...)`` sees, so two decoders can be compared on their own."""

    def __init__(self, model):
        self.model = model.eval()

    @torch.no_grad()
    def dense(self, images: np.ndarray):
        feats = self.model.features(torch.from_numpy(images))
        feats = torch.cat([feats[:1], torch.flip(feats[1:], dims=[3])], dim=0)
        return feats.numpy(), self.model.center_logits(feats).numpy()

    @torch.no_grad()
    def instances(self, features: np.ndarray, coords: np.ndarray):
        v, n = features.shape[0], coords.shape[0]
        imgid = torch.arange(v).repeat_interleave(n)
        return self.model.instance_heatmaps(torch.from_numpy(features), torch.from_numpy(coords).repeat(v, 1),
                                            imgid).numpy()


class SharedNet:
    """One network run for two decoders: ``numpy`` serves :func:`decode_np` (numpy arrays), ``torch`` serves
    ``decode`` as a backend runner (tensors); a call with the same inputs as the previous one of its kind is
    answered from memory, so each image costs one network pass while both decoders see the same outputs."""

    device = torch.device("cpu")

    def __init__(self, model):
        self.net = NumpyNet(model)
        self.memo: dict[str, tuple] = {}
        self.calls = 0

    def _call(self, kind: str, *inputs: np.ndarray):
        old = self.memo.get(kind)
        if old is None or len(old[0]) != len(inputs) or not all(
                a.shape == b.shape and np.array_equal(a, b) for a, b in zip(old[0], inputs)):
            self.calls += 1
            self.memo[kind] = ([a.copy() for a in inputs], getattr(self.net, kind)(*inputs))
        return self.memo[kind][1]

    def numpy(self):
        return _Calls(lambda x: self._call("dense", x), lambda f, c: self._call("instances", f, c))

    def torch(self):
        def dense(x):
            feats, center = self._call("dense", x.numpy())
            return torch.from_numpy(feats), torch.from_numpy(center)

        return _Calls(dense, lambda f, c: torch.from_numpy(self._call("instances", f.numpy(), c.numpy())))


class _Calls(Runner):
    """A runner (decode runs only those) answering with given functions: the numpy decoder's network calls."""

    name, variant, device, threads = "exact", "test stand-in", torch.device("cpu"), 1

    def __init__(self, dense, instances):
        self._dense, self._instances = dense, instances

    def dense(self, images):
        return self._dense(images)

    def instances(self, features, coords):
        return self._instances(features, coords)


def keypoints(poses) -> np.ndarray:
    return np.array([p["keypoints"] for p in poses], dtype=np.float64).reshape(len(poses), -1, 3)


def max_px(a_poses, b_poses) -> float:
    """Largest |Δx|, |Δy| between two pose lists of the same people in the same order (inf if they differ)."""
    if len(a_poses) != len(b_poses):
        return float("inf")
    if not a_poses:
        return 0.0
    return float(np.abs(keypoints(a_poses)[..., :2] - keypoints(b_poses)[..., :2]).max())


def assert_same_poses(out, ref, tol_px: float, rtol_score: float = 1e-5):
    assert len(out) == len(ref) > 0
    assert max_px(out, ref) <= tol_px
    np.testing.assert_allclose(keypoints(out)[..., 2], keypoints(ref)[..., 2], rtol=rtol_score, atol=1e-9)
    np.testing.assert_allclose([p["score"] for p in out], [p["score"] for p in ref], rtol=rtol_score, atol=1e-9)
    assert [p["image_id"] for p in out] == [p["image_id"] for p in ref]
