"""Wiring for evaluation jobs: decode a data set through a :class:`~boir_core.engine.inference.predictor.Predictor`,
evaluate, write the metrics.

:func:`run_evaluation` is what ``python -m boir_core evaluate`` runs: it decodes the config's test split (with
the ``exact`` backend unless ``test.backend`` names another, docs/inference.md#exact-and-fast-inference),
evaluates with the data set's protocol and writes a metrics JSON that the table notebooks read. The weights
loading (:func:`load_inference_model`, :func:`checkpoint_config`, ...) lives in
:mod:`boir_core.engine.inference.weights` and is re-exported here.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch.distributed as dist

from ...config import Config
from ...data import DataError, KeypointDataset, get_profile
from ...data.profiles import DEMO_DATASETS
from ...data.sources import synthetic
from ...io import atomic_write_json
from ...model import count_parameters
from ...paths import PathNotFound, inside_package
from ..distributed import (
    DistInfo,
    all_gather_objects,
    broadcast_object,
    cleanup_distributed,
    device_name,
    init_distributed,
)
from ..inference.predictor import DecodedDataset, ImageShare, Predictor
from ..inference.weights import check_inference_weights, checkpoint_config, load_inference_model, resolve_checkpoint
from .evaluate import Measurements, MetricsProvenance, evaluate_results, timings_from_decode, write_metrics_json
from .results import write_testdev_results

__all__ = ["Predictor", "ImageShare", "DecodedDataset", "resolve_checkpoint", "checkpoint_config",
           "load_inference_model", "check_inference_weights", "decode_dataset", "run_evaluation", "default_eval_dir",
           "prepare_demo_data"]



def decode_dataset(cfg: Config, model, dataset, *, progress: bool = True, share: ImageShare = ImageShare(),
                   runner=None) -> DecodedDataset:
    """Decode the images of a test-mode dataset: a :class:`~boir_core.engine.inference.predictor.DecodedDataset`
    (the results, the seconds in the network and in the decoding, how many images).

    ``share`` (:class:`~boir_core.engine.inference.predictor.ImageShare`) names which: the first ``max_images``
    (0: all), and with ``world_size`` > 1 only this process's round-robin part of them (image i belongs to rank
    ``i % world_size``); :func:`run_evaluation` merges the parts. ``runner``: an already built runner of
    ``cfg.test.backend`` (unset: ``exact``) for ``model`` (default: built here).
    :meth:`Predictor.decode_dataset <boir_core.engine.inference.predictor.Predictor.decode_dataset>` does the work.
    """
    return Predictor(cfg, model=model, runner=runner).decode_dataset(dataset, progress=progress, share=share)


@dataclass(frozen=True)
class _EvaluationRun:
    """The inputs of one evaluation, as rank 0 scores and writes it: the config (``test.backend`` the one that
    ran), the weights file (None: random weights), the network, the test data set, where the files go and the
    paper-table key."""

    cfg: Config
    checkpoint: str | os.PathLike | None
    model: Any
    dataset: KeypointDataset
    out_dir: Path
    key: str | None


def run_evaluation(cfg: Config, checkpoint: str | os.PathLike | None, *, out_dir: str | os.PathLike | None = None,
                   key: str | None = None, progress: bool = True,
                   predictor: Predictor | None = None) -> dict[str, Any]:
    """Decode the test split, evaluate it and write ``metrics.json`` (+ the results JSON) into ``out_dir``
    (default: :func:`default_eval_dir`); ``key`` is the paper-table row the run fills (null: none).

    The network runs through ``test.backend``; unset, through ``exact`` (the release's poses,
    docs/inference.md#exact-and-fast-inference). The metrics file's config records the backend that ran.
    ``predictor``: a :class:`~boir_core.engine.inference.predictor.Predictor` of this config already built (a
    notebook's, or ``Predictor(cfg, model=network)`` for a network already loaded), which skips loading the
    weights and building the runner again; ``checkpoint`` still names the weights in the metrics file.

    Launched by ``torchrun --nproc_per_node=N`` (one process per GPU), every process decodes a round-robin
    share of the images on its own device; rank 0 merges the shares, evaluates and writes the files, and
    every process returns the same dictionary. Timings stay per image on one device.
    """
    owns_group = not (dist.is_available() and dist.is_initialized())
    dinfo = init_distributed(cfg.test.device)
    try:
        if predictor is None:
            predictor = Predictor(cfg, checkpoint, device=dinfo.device)
        cfg = cfg.override(f"test.backend={predictor.backend}")  # the metrics record what ran
        out_dir = Path(default_eval_dir(cfg, checkpoint) if out_dir is None else out_dir)
        dataset = KeypointDataset.from_config(cfg, train=False)
        _check_people_to_evaluate(cfg, dataset)
        mine = predictor.decode_dataset(dataset, progress=progress and dinfo.is_main,
                                        share=ImageShare(cfg.test.max_images, dinfo.rank, dinfo.world_size))
        shares = all_gather_objects(mine)
        out = None
        if dinfo.is_main:  # only rank 0 merges, evaluates and writes
            run = _EvaluationRun(cfg, checkpoint, predictor.model, dataset, out_dir, key)
            out = _evaluate_and_write(run, DecodedDataset.merge(shares, dataset.image_ids), dinfo)
        out = broadcast_object(out)
        if owns_group and dinfo.distributed:
            # every rank holds its copy before the group goes: a rank that tore the group down while its peer
            # was still inside the broadcast aborted gloo ("terminate called without an active exception")
            dist.barrier()
        return out
    finally:
        if owns_group and dinfo.distributed:
            cleanup_distributed()


def _check_people_to_evaluate(cfg: Config, dataset) -> None:
    """Ground truth without a single person to score against gives every metric -1 (pycocotools' "undefined"):
    a :class:`~boir_core.data.DataError` before any decoding instead. COCO test-dev (no public labels: the
    evaluation server scores it) is exempt."""
    if cfg.data.dataset == "coco" and cfg.data.test_split in ("test", "test-dev"):
        return
    n = ImageShare(cfg.test.max_images).total(len(dataset))
    if sum(len(r["keypoints"]) for r in dataset.records[:n]) == 0:
        scope = f"none of its {n} images" if n == len(dataset) else f"none of the first {n} images (test.max_images)"
        raise DataError(f"{dataset.ann_file}: no people to evaluate against: {scope} has a person (a non-crowd "
                        "annotation with a labelled keypoint, v > 0), so every metric would be -1 (undefined); "
                        f"evaluate on annotated data (data.root={cfg.data.root}, data.test_split="
                        f"{cfg.data.test_split})")


def default_eval_dir(cfg: Config, checkpoint: str | os.PathLike | None) -> Path:
    """Where ``evaluate`` writes without ``--out``: ``eval/`` beside the checkpoint, except for weights inside
    the package (the shipped ones; never written into) and no weights: ``<output_dir>/<name>/eval`` (from the
    working folder)."""
    if checkpoint:
        ckpt = resolve_checkpoint(checkpoint)
        if not inside_package(ckpt):
            return ckpt.parent / "eval"
    return Path(cfg.output_dir) / cfg.name / "eval"


def prepare_demo_data(cfg: Config, say=print) -> bool:
    """Generate SynthCrowd (the kit's embedded data set, :func:`boir_core.data.sources.synthetic.ensure_synthcrowd` with
    its defaults, as ``make demo`` does) when the config uses it and ``data.root`` is SynthCrowd's default
    folder (``data/synthcrowd``, ``data/synthcrowd14`` for 14 keypoints, from the working folder), e.g. a
    ``pip install``-ed kit run in a fresh folder; ``say`` tells where, why and how much. Returns whether it
    generated.

    - A complete set, or a folder holding something else (someone's own data), is used as it is.
    - An incomplete SynthCrowd at the default folder (:func:`~boir_core.data.sources.synthetic.synthcrowd_state`: an
      interrupted generation of an older kit) is regenerated, said; never used as it is.
    - Any other ``data.root`` the user named is never generated into: one that does not exist is a
      :class:`~boir_core.paths.PathNotFound` (a mistyped path?), one holding an incomplete SynthCrowd a
      :class:`~boir_core.data.DataError`; both say how to generate SynthCrowd there on purpose.
    """
    if cfg.data.dataset not in DEMO_DATASETS:
        return False
    root = Path(cfg.data.root).expanduser()
    state, detail = synthetic.synthcrowd_state(root)
    if state in ("complete", "other"):
        return False
    k = get_profile(cfg.data.dataset).num_keypoints
    default = synthetic.default_root(k)
    at_default = root.resolve() == Path(default).resolve()
    if state == "empty" and not at_default:
        return False  # a folder of the user's own: the data set says what it lacks
    make_it = (f"python -c \"from boir_core.data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd; "
               f"ensure_synthcrowd('{root}', SynthCrowdSpec(num_keypoints={k}))\"")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # torchrun: the processes would race writing the same files
        raise FileNotFoundError(f"no {cfg.data.dataset} data at data.root={cfg.data.root} ({root.resolve()}: "
                                f"{detail}); under torchrun generate it first, in one process: {make_it}")
    if not at_default:
        if state == "missing":
            raise PathNotFound(f"data.root={cfg.data.root} ({root.resolve()}) does not exist (a mistyped path?); "
                               f"the kit generates its SynthCrowd data by itself only at its default folder "
                               f"data.root={default}. To generate SynthCrowd at {root} on purpose: {make_it}")
        raise DataError(f"data.root={cfg.data.root} ({root.resolve()}) holds an incomplete SynthCrowd set "
                        f"({detail}: an interrupted generation?), which is not used as it is; to generate it "
                        f"again there: {make_it}")
    what = (f"no {cfg.data.dataset} data" if state in ("missing", "empty") else
            f"an incomplete SynthCrowd ({detail}: an interrupted generation?), not used as it is,")
    say(f"[data] {what} at data.root={cfg.data.root} ({root.resolve()}): generating the kit's embedded SynthCrowd "
        f"there ({synthetic.DEFAULT_TRAIN} train + {synthetic.DEFAULT_VAL} val images, {k} keypoints; once)")
    s = synthetic.ensure_synthcrowd(root, synthetic.SynthCrowdSpec(num_keypoints=k, num_train=synthetic.DEFAULT_TRAIN,
                                                                   num_val=synthetic.DEFAULT_VAL))
    say(f"[data] SynthCrowd generated in {s.get('seconds', 0):.0f} s: {root.resolve()}")
    return True


def _evaluate_and_write(run: _EvaluationRun, decoded: DecodedDataset, dinfo: DistInfo) -> dict[str, Any]:
    """Score the merged ``decoded`` images of ``run`` and write the results JSON and ``metrics.json`` (COCO
    test-dev: the evaluation server's upload file instead of scores); what :func:`run_evaluation` returns."""
    cfg, dataset, n = run.cfg, run.dataset, decoded.num_images
    run.out_dir.mkdir(parents=True, exist_ok=True)
    split = cfg.data.test_split
    res_path = run.out_dir / f"keypoints_{cfg.data.dataset}_{split}_results.json"
    atomic_write_json(res_path, decoded.results)
    timings = timings_from_decode(decoded, device_name(dinfo.device))
    upload = None
    if cfg.data.dataset == "coco" and split in ("test", "test-dev"):
        # COCO test-dev has no public labels: write the evaluation server's upload file instead
        split = "test-dev"  # the metrics file names it as Table 1 does (prepare's coco_test.json is test-dev)
        upload = write_testdev_results(decoded.results, run.out_dir, alg=cfg.model.arch,
                                       image_ids=dataset.image_ids)
        metrics: dict[str, Any] = {}
    else:
        gt: Any = dataset.ann_file
        if n < len(dataset):  # test.max_images: score against the decoded images only
            gt = _subset_gt(dataset.ann_file, set(dataset.image_ids[:n]))
        metrics = evaluate_results(decoded.results, gt, dataset=cfg.data.dataset, backend=cfg.test.evaluator,
                                   sigmas=dataset.profile.sigmas)
    params = count_parameters(run.model)
    provenance = MetricsProvenance(
        config=cfg.to_dict(), checkpoint=str(resolve_checkpoint(run.checkpoint)) if run.checkpoint else None,
        preset=getattr(run.model, "weights_preset", None), key=run.key, demo=cfg.data.dataset in DEMO_DATASETS,
        batch=getattr(run.model, "weights_batch", None))
    measured = Measurements(images=n, timings=timings,
                            params={"inference": params["inference"], "total": params["total"]})
    metrics_path = write_metrics_json(run.out_dir / "metrics.json", dataset=cfg.data.dataset, split=split,
                                      metrics=metrics, provenance=provenance, measured=measured)
    return {"metrics": metrics, "metrics_path": metrics_path, "results_path": res_path, "timings": timings,
            "images": n, "processes": dinfo.world_size, "testdev_upload": upload}


def _subset_gt(ann_file: Path, image_ids: set) -> dict[str, Any]:
    gt = json.loads(Path(ann_file).read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] in image_ids]
    gt["annotations"] = [a for a in gt.get("annotations", []) if a["image_id"] in image_ids]
    return gt


