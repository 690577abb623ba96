"""One inference path: a config and weights → a network → a runner → :func:`~boir_core.engine.inference.decode.decode`.

:class:`Predictor` is what ``predict``, ``evaluate`` (:func:`boir_core.engine.evaluation.runner.run_evaluation`),
``profile``, the notebooks and the benchmarks decode through, so each of them reads the same settings the same
way: the weights (:func:`boir_core.engine.inference.weights.load_inference_model`), the device (``test.device``), the
backend (``test.backend``, :func:`resolve_backend`) and the decoding settings (``test.*`` plus the data set's
flip index and OKS sigmas, :func:`~boir_core.engine.inference.decode.decode_settings_from_config`)::

    pred = Predictor(cfg, "shipped:boir")            # exact: the release's poses
    poses = pred(sample["image"], sample["meta"]).poses

An unset ``test.backend`` means :data:`EXACT` where numbers are reported (the default here, ``evaluate``,
``reproduce``, the notebooks' metrics) and :data:`FAST` where speed matters more (``predict``, ``profile``
pass ``backend=BackendChoice(default=FAST)``); docs/inference.md#exact-and-fast-inference. The runner is the
backend's own business (:func:`~boir_core.engine.inference.backends.make_runner` gets the config and takes
what it needs from it, e.g. INT8's calibration images).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
import torch.nn as nn
from tqdm.auto import tqdm

from ...config import BACKENDS, Config
from ...data import profile_for
from ..distributed import resolve_device
from . import backends, weights
from . import decode as decode_mod  # called through the module: tests stand in for decode there

__all__ = ["Predictor", "BackendChoice", "ImageShare", "DecodedDataset", "resolve_backend", "EXACT", "FAST"]

#: The backend that gives the release's poses: eager fp32 on the network as trained.
EXACT = "exact"
#: The fastest PyTorch path (BN folded, fused instance head, channels-last on a CPU): predict's default.
FAST = "torch"


def resolve_backend(backend: str | None, default: str = EXACT) -> str:
    """The backend to run: ``backend`` (``test.backend``) when set, else ``default`` (:data:`EXACT` where
    numbers are reported, :data:`FAST` for predict and profile)."""
    name = default if backend is None else backend
    if name not in BACKENDS:
        raise ValueError(f"test.backend={name!r} is not one of {list(BACKENDS)}")
    return name


@dataclass(frozen=True)
class BackendChoice:
    """Which backend a :class:`Predictor` runs, and with what: ``name`` overrides ``test.backend``; both unset,
    ``default`` runs (:data:`EXACT` where numbers are reported, :data:`FAST` for predict and profile);
    ``options`` go to :func:`~boir_core.engine.inference.backends.make_runner` (e.g. ``threads``; only the ones
    the backend takes)."""

    name: str | None = None
    default: str = EXACT
    options: backends.RunnerOptions = backends.RunnerOptions()

    def resolve(self, cfg: Config) -> str:
        """The backend that runs for ``cfg`` (:func:`resolve_backend`)."""
        return resolve_backend(self.name if self.name is not None else cfg.test.backend, self.default)


@dataclass(frozen=True)
class ImageShare:
    """Which images of a test data set one process decodes: of the first ``max_images`` (0: all; the config's
    ``test.max_images``), image i belongs to rank ``i % world_size``. The default, one process, decodes them all;
    under torchrun each process takes its round-robin share (``rank``, ``world_size`` of its
    :class:`~boir_core.engine.distributed.DistInfo`)."""

    max_images: int = 0
    rank: int = 0
    world_size: int = 1

    def __post_init__(self):
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")

    def total(self, num_images: int) -> int:
        """How many of a data set's ``num_images`` images all the processes decode together."""
        return num_images if self.max_images <= 0 else min(self.max_images, num_images)

    def indices(self, num_images: int) -> range:
        """The indices of this process's images in a data set of ``num_images``."""
        return range(self.rank, self.total(num_images), self.world_size)


@dataclass(frozen=True)
class DecodedDataset:
    """What decoding a data set (or one process's share of it) gives: ``results``, the COCO keypoint results of
    every image decoded (in data-set order); ``time_network`` / ``time_decode``, the seconds spent in the network
    calls / in the decoding around them, summed over the images; ``num_images``, how many images were decoded.
    The field names are :class:`~boir_core.engine.inference.decode.DecodeResult`'s, so
    :func:`~boir_core.engine.evaluation.evaluate.timings_from_decode` reads the per-image timings of either."""

    results: list[dict[str, Any]]
    time_network: float = 0.0
    time_decode: float = 0.0
    num_images: int = 0

    @classmethod
    def merge(cls, shares: Sequence[DecodedDataset], image_ids: Sequence[Any]) -> DecodedDataset:
        """Join the shares of every process (:class:`ImageShare`): the results in data-set order (``image_ids``,
        as one process gives them), the seconds and the images summed."""
        order = {iid: i for i, iid in enumerate(image_ids)}
        results = sorted((r for share in shares for r in share.results), key=lambda r: order[r["image_id"]])
        return cls(results, sum(s.time_network for s in shares), sum(s.time_decode for s in shares),
                   sum(s.num_images for s in shares))


def _device_of(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):  # a stand-in without parameters
        return torch.device("cpu")


class Predictor:
    """``cfg``'s inference network with ``checkpoint`` loaded, run through one backend, decoded with ``cfg``'s
    test settings.

    Args:
        cfg: the config (``model``, ``data.dataset``, ``test.*``).
        checkpoint: any weights file the kit reads (None: random weights); ignored when ``model`` is given.
        backend: which backend runs (:class:`BackendChoice`: ``name`` overrides ``test.backend``; both unset:
            its ``default``, :data:`EXACT` unless changed; its ``options`` go to the runner).
        model: an already loaded inference network (skips loading).
        runner: an already built runner of the chosen backend (a notebook's), reused; a runner of another
            backend is an error (the metrics would name the wrong backend).
        device: overrides ``test.device`` (where the network is loaded; a given ``model`` stays where it is).

    Attributes: ``cfg``, ``backend`` (the name that runs), ``model``, ``runner``, ``device``, ``profile`` (the
    data set's), ``decode_settings``, ``report`` (the :class:`~boir_core.model.LoadReport`, None without a file).
    """

    def __init__(self, cfg: Config, checkpoint: str | os.PathLike | None = None, *,
                 backend: BackendChoice = BackendChoice(), model: nn.Module | None = None,
                 runner: backends.Runner | None = None, device: torch.device | str | None = None):
        if not isinstance(backend, BackendChoice):
            raise TypeError(f"backend= takes a BackendChoice (e.g. BackendChoice({backend!r})), got "
                            f"{type(backend).__name__}")
        self.cfg = cfg
        self.backend = backend.resolve(cfg)
        if runner is not None and getattr(runner, "name", None) != self.backend:
            unset = " (unset: this command's default)" if backend.name is None and cfg.test.backend is None else ""
            raise ValueError(f"the runner given is a {getattr(runner, 'name', type(runner).__name__)!r} runner but "
                             f"test.backend={self.backend!r}{unset} (the metrics would name the wrong backend)")
        self.report = None
        if model is None:
            self.device = torch.device(device) if device is not None else resolve_device(cfg.test.device)
            model, self.report = weights.load_inference_model(cfg, checkpoint, self.device)
        else:  # a loaded network stays where it is
            self.device = torch.device(device) if device is not None else _device_of(model)
        self.model = model
        # test.backend (one of config.registry.BACKENDS): its builder takes what it needs from the config
        self.runner = runner if runner is not None else backends.make_runner(self.backend, model, cfg=cfg,
                                                                             options=backend.options)
        self.profile = profile_for(cfg)  # a custom keypoint set: from its file (docs/custom_keypoints.md)
        self.decode_settings = decode_mod.decode_settings_from_config(cfg.test, self.profile.flip_index,
                                                                      self.profile.sigmas)

    @property
    def variant(self) -> str:
        """What exactly runs the network (e.g. ``eager``, ``fold_bn+fast_instance+channels_last``)."""
        return getattr(self.runner, "variant", self.backend)

    def __call__(self, image: torch.Tensor, meta: Mapping[str, Any], *, image_id: int | None = None,
                 return_intermediates: bool = False, **overrides: Any) -> decode_mod.DecodeResult:
        """Decode one test image (:func:`~boir_core.engine.inference.decode.decode`); ``overrides`` replace fields of
        the config's decode settings for this call (e.g. ``flip_test=False``; an unknown name is a TypeError)."""
        settings = dataclasses.replace(self.decode_settings, **overrides) if overrides else self.decode_settings
        return decode_mod.decode(self.runner, image, meta, settings, image_id=image_id,
                                 return_intermediates=return_intermediates)

    def decode_dataset(self, dataset, *, progress: bool = True, share: ImageShare = ImageShare()) -> DecodedDataset:
        """Decode the images of a test-mode dataset: all of them, or the first ``test.max_images`` / this
        process's round-robin part of them that ``share`` names (:class:`ImageShare`; one process: all)."""
        if not isinstance(share, ImageShare):
            raise TypeError(f"share= takes an ImageShare (e.g. ImageShare(max_images=2)), got {type(share).__name__}")
        results, t_net, t_dec = [], 0.0, 0.0
        mine = share.indices(len(dataset))
        for i in tqdm(mine, desc="decode", leave=False) if progress else mine:
            s = dataset[i]
            r = self(s["image"], s["meta"], image_id=s["image_id"])
            results.extend(r.poses)
            t_net += r.time_network
            t_dec += r.time_decode
        return DecodedDataset(results, t_net, t_dec, len(mine))
