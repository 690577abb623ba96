"""The config's dataclasses: :class:`Config` and its sections ``data``, ``model``, ``loss``, ``train``, ``test``
(every field, its type and its default)."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from ..io import atomic_write_text
from .assign import apply_overrides
from .errors import ConfigError
from .registry import BACKENDS, CUSTOM, DATASET_KEYPOINTS, DATASET_NAMES
from .typecheck import merge_into

__all__ = ["KeypointsConfig", "DataConfig", "ModelConfig", "LossConfig", "TrainConfig", "TestConfig", "Config"]

#: ``data.dataset``'s and ``test.backend``'s choices, read from the one table of names (:mod:`.registry`)
DatasetName = Literal[DATASET_NAMES]  # type: ignore[valid-type]
BackendName = Literal[BACKENDS]  # type: ignore[valid-type]


@dataclass
class KeypointsConfig:
    """``data.keypoints``: the keypoint set and files of ``data.dataset: custom`` (ignored by the registry's data
    sets). A field left at None is read from the annotation file or inferred (:mod:`boir_core.data.custom`,
    docs/custom_keypoints.md#the-keypoints-block)."""

    names: Optional[list[str]] = None  # None: the file's categories[0].keypoints
    skeleton: Optional[list[list[str]]] = None  # pairs of names; None: the file's (1-based) skeleton
    flip_pairs: Optional[list[list[str]]] = None  # pairs of names; None: inferred from left/right names
    sigmas: Optional[list[float]] = None  # K OKS sigmas (true σ); None: COCO's mean sigma for every keypoint
    annotations: str = "annotations/{split}.json"  # under data.root, {split} filled in
    images: str = "images/{split}"  # under data.root; file_name is relative to it


@dataclass
class DataConfig:
    dataset: DatasetName = "synthcrowd"
    root: str = "data/synthcrowd"
    train_split: str = "train"
    test_split: str = "val"
    input_size: int = 512
    output_size: int = 128
    # augmentation (docs/data_format.md#augmentation)
    flip: float = 0.5
    max_rotation: float = 30.0
    min_scale: float = 0.75
    max_scale: float = 1.5
    max_translate: int = 40
    # paper-vs-release switches (docs/release_vs_paper.md#switches)
    flip_alignment: Literal["paper", "release"] = "paper"
    box_clipping: Literal["paper", "release"] = "paper"
    center_jitter: bool = True
    # at most this many people of one image become instances, smallest first (the release's
    # DATASET.MAX_INSTANCES; loss.max_instances is the cap of the instance loss over the whole batch)
    max_instances_per_image: int = 200
    workers: int = 0
    skip_bad_samples: bool = False
    keypoints: KeypointsConfig = field(default_factory=KeypointsConfig)  # data.dataset=custom only


@dataclass
class ModelConfig:
    arch: Literal["boir", "cid"] = "boir"
    backbone: str = "hrnet_w32"
    # ImageNet initialisation of the backbone (docs/model.md#backbone-hrnet): "timm" (timm's weights
    # through its hub, cached; "hub" is an alias), a local file (the official
    # hrnetv2_w*_imagenet_pretrained.pth or a timm checkpoint), or none (from scratch, on purpose). See
    # boir_core.model.pretrained.
    pretrained: Optional[str] = None
    neck_channels: int = 256
    neck_middle_channels: int = 128
    atrous_rates: list[int] = field(default_factory=lambda: [12, 24, 36])
    head_channels: int = 128
    emb_dim: int = 128
    inst_channels: int = 64  # 64 for W32, 96 for W48, 32 for CID
    bbox_head: bool = True  # Table 4 ablation: train with the bbox head or not
    bbox_head_init: Literal["paper", "release"] = "paper"


@dataclass
class LossConfig:
    # Eq. 5 unit weights vs the release's weights and ÷B (docs/release_vs_paper.md#loss-weighting)
    weighting: Literal["paper", "release"] = "paper"
    multi_heatmap_weight: float = 1.0
    single_heatmap_weight: float = 4.0
    bbox_weight: float = 0.25
    bbox_mask_weight: float = 0.25
    bbox_mask: bool = True  # Table 4 ablation: Bbox Mask Loss on/off
    bbox_mask_variant: Literal["paper", "release-image", "release-instance"] = "paper"
    emb_loss: Literal["ae", "contrastive"] = "ae"  # Table 4 right
    distance: Literal["l2", "cosine"] = "l2"  # Table 4 right
    beta: float = 10.0  # Table 7 left
    temperature: float = 0.05  # InfoNCE temperature for emb_loss=contrastive
    instance_point: Literal["center", "box"] = "center"  # where p_i is sampled (paper variant)
    # release swaps x/y in dist2bbox (docs/release_vs_paper.md#box-loss-and-decoding)
    bbox_decode: Literal["paper", "release"] = "paper"
    # the instance keypoint loss uses a random subset of this many of the batch's instances (0: all)
    max_instances: int = 200
    # an image with no instance: counts nothing (paper) or one dummy instance that adds nothing to the sums but
    # counts in the release Bbox Mask Loss's instance count and with 4 pixels in the box loss's window-pixel count
    # (release; docs/release_vs_paper.md#dummy-instance)
    dummy_instance: Literal["paper", "release"] = "paper"


@dataclass
class TrainConfig:
    epochs: int = 140
    warmup_epochs: int = 10
    batch_size: int = 20  # images per process and micro-step (BatchNorm's statistics are over these)
    # micro-batches summed into one optimisation step (gradient accumulation; under DDP one gradient sync per
    # step): the effective batch is processes x batch_size x accumulate (docs/training.md#effective-batch)
    accumulate: int = 1
    # the paper's effective batch for this setting (the paper's configs: 80 = 4 GPUs x 20; 0: no paper value).
    # A run with another effective batch says so; the learning rate is scaled by effective / paper only with
    # lr_scaling: linear
    paper_effective_batch: int = 0
    lr_scaling: Literal["none", "linear"] = "none"
    lr: float = 1e-3
    weight_decay: float = 0.025
    min_lr: float = 1e-6
    warmup_start_lr: float = 1e-12
    clip_grad: float = 10.0
    amp: Literal["auto", "fast", "fp16", "bf16", "off"] = "auto"  # fast: + bf16 on CPUs with native bf16
    device: str = "auto"
    seed: int = 0
    sync_bn: bool = False
    channels_last: bool = False
    compile: bool = False
    save_every: int = 2
    max_steps_per_epoch: int = 0  # 0: the whole epoch
    # the run's length (boir_core.engine.training.budget): max_steps > 0 runs exactly that many steps (it wins over the
    # budget); time_budget_s > 0 times a few steps on this machine and runs as many as fit in the budget
    max_steps: int = 0
    time_budget_s: float = 0.0
    transfer_from: Optional[str] = None  # COCO -> CrowdPose finetune (docs/training.md#transfer-to-crowdpose)
    max_nonfinite_in_a_row: int = 5
    log_every: int = 10


@dataclass
class TestConfig:
    flip_test: bool = True
    max_proposals: int = 30
    center_threshold: float = 0.01  # a center peak is a proposal when its score exceeds this (the release's 0.01)
    center_pool_kernel: int = 3  # 11 for OCHuman
    oks_nms_threshold: float = 0.8  # 0.7 for OCHuman
    evaluator: Literal["pycocotools", "faster-coco-eval"] = "pycocotools"
    max_images: int = 0  # 0: all
    # who runs the network (boir_core.engine.inference.backends; the names: config.registry.BACKENDS).
    # Unset (null): exact where numbers are reported (evaluate, reproduce, the notebooks' metrics), torch (fast)
    # for predict and profile (docs/inference.md#exact-and-fast-inference)
    backend: Optional[BackendName] = None
    # where inference runs (evaluate, predict, profile, the notebooks): "auto" (a GPU if there is one), "cpu",
    # "cuda", "cuda:1", ...; training's device is train.device
    device: str = "auto"
    # test.backend=onnxruntime_int8 (and boir export --int8): how many train-split images calibrate the INT8
    # activation ranges (boir_core.engine.inference.quantize)
    calibration_images: int = 16


@dataclass
class Config:
    name: str = "default"
    output_dir: str = "runs"
    # which released behaviour the seven paper-vs-release switches default to (RELEASE_PRESET)
    preset: Literal["paper", "release"] = "paper"
    # key=value pairs the release preset also sets for this setting (what its released yaml changed)
    release_settings: list[str] = field(default_factory=list)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    test: TestConfig = field(default_factory=TestConfig)

    # ---- conversion -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def __str__(self) -> str:  # printable
        return self.to_yaml()

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "<dict>") -> "Config":
        cfg = cls()
        merge_into(cfg, d, prefix="", source=source)
        return cfg

    def override(self, *items: str) -> "Config":
        """Return a copy with ``key=value`` overrides applied (:func:`~boir_core.config.assign.apply_overrides`).

        ``preset=...`` among them sets the preset's switches (except those overridden in the same call)."""
        new = Config.from_dict(self.to_dict())
        apply_overrides(new, list(items))
        return new

    def dump(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as YAML, atomically."""
        return atomic_write_text(path, self.to_yaml())

    @property
    def num_keypoints(self) -> int:
        """K of ``data.dataset`` (:data:`~boir_core.config.registry.DATASET_KEYPOINTS`); for ``custom``, the
        number of ``data.keypoints.names`` (K read from the annotation file: ``boir_core.data.profile_for``)."""
        if self.data.dataset == CUSTOM:
            if self.data.keypoints.names is None:
                raise ConfigError("data.dataset=custom without data.keypoints.names: K is read from the annotation "
                                  "file's categories, by boir_core.data.profile_for(cfg).num_keypoints")
            return len(self.data.keypoints.names)
        try:
            return DATASET_KEYPOINTS[self.data.dataset]
        except KeyError:
            raise ConfigError(f"data.dataset={self.data.dataset!r} is not one of {list(DATASET_NAMES)}") from None
