"""Wiring for inference jobs: build the inference model, load weights, decode a data set, evaluate.

:func:`load_inference_model` accepts every weights file the kit knows (our ``final.pt``, a run folder, a
training checkpoint ``checkpoints/last.pt``, a released BoIR / CID ``.pth``) and fails loudly on anything
else. :func:`run_evaluation` is what ``python -m boir_core evaluate`` runs: it decodes the config's test
split, evaluates with the data set's protocol and writes a metrics JSON that the table notebooks read.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import Config, ConfigError, load_config, preset_label, upgrade_config_dict
from ..data import DataError, KeypointDataset, get_profile, profile_for, synthetic
from ..data.profiles import DEMO_DATASETS
from ..io import atomic_write_json
from ..model import build_model, check_weights, count_parameters, load_weights, read_checkpoint
from ..model.demo_weights import shipped_arch, shipped_checkpoint
from ..paths import PathNotFound, inside_package
from . import backends
from . import decode as decode_mod  # called through the module: tests stand in for decode there
from .checkpointing import FORMAT as TRAIN_STATE_FORMAT
from .checkpointing import run_weights
from .distributed import all_gather_objects, broadcast_object, cleanup_distributed, device_name, init_distributed
from .evaluate import evaluate_results, write_metrics_json
from .results import write_testdev_results

__all__ = ["resolve_checkpoint", "checkpoint_config", "load_inference_model", "check_inference_weights",
           "decode_dataset", "run_evaluation", "default_eval_dir", "prepare_demo_data"]



def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A run folder means its ``final.pt`` (or ``checkpoints/last.pt`` while training); ``shipped:boir`` /
    ``shipped:cid`` (a string) always mean the demo weights shipped inside the package, checksum verified: a
    file or folder of that name in the working folder is never consulted (``./shipped:boir`` or a ``Path``
    names it)."""
    arch = shipped_arch(path)
    if arch is not None:
        return shipped_checkpoint(arch)
    p = Path(path)
    if p.is_dir():
        weights = run_weights(p)
        if weights is not None:
            return weights
        raise FileNotFoundError(f"{p} is a folder without final.pt or checkpoints/last.pt")
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    return p


def checkpoint_config(checkpoint: str | os.PathLike | None, config: str | os.PathLike | None = None,
                      overrides: list[str] | tuple[str, ...] = (), fallback: str = "demo") -> Config:
    """The config to use with ``checkpoint``: ``config`` when given; else the one saved with the weights (the
    run folder's ``config.yaml`` beside them, or the config stored inside our ``final.pt``); else ``fallback``.
    ``overrides`` (``key=value``) are applied last."""
    if config is not None and str(config) != "":
        return load_config(config, list(overrides))
    if checkpoint is not None:
        path = resolve_checkpoint(checkpoint)
        run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
        for cand in (run_dir / "config.yaml",):
            if cand.is_file():
                return load_config(cand, list(overrides))
        obj = read_checkpoint(path)  # as data only; names the file if it cannot be read
        saved = (obj.get("extra") or {}).get("config") if isinstance(obj, dict) else None
        if isinstance(saved, dict):
            # a stored record, possibly in an older kit's switch words: read without a deprecation warning
            return Config.from_dict(upgrade_config_dict(saved), source=f"{path} (saved config)").override(*overrides)
    return load_config(fallback, list(overrides))


def load_inference_model(cfg: Config, checkpoint: str | os.PathLike | None, device: torch.device | str = "cpu"):
    """The inference network of ``cfg`` with ``checkpoint`` loaded strictly (None: random weights)."""
    obj = path = None
    if checkpoint is not None:  # read before the network is built: a file that is refused costs nothing
        path = resolve_checkpoint(checkpoint)
        obj = read_checkpoint(path)  # as data only; names the file if it cannot be read
    model = build_model(cfg, train=False)
    report = None
    if path is not None:
        source: Any = obj if isinstance(obj, dict) else path  # not a dict: load_weights names what it holds
        train_config = None
        if isinstance(obj, dict) and obj.get("format") == TRAIN_STATE_FORMAT:
            source = obj["model_state"]  # our training state: its weights (training-only heads are dropped)
            train_config = obj.get("config")
        elif isinstance(obj, dict):
            train_config = (obj.get("extra") or {}).get("config") if isinstance(obj.get("extra"), dict) else None
        report = load_weights(model, source, source_name=str(path))
        model.weights_preset = _weights_preset(report.kind, train_config)
    return model.to(device).eval(), report


def check_inference_weights(cfg: Config, checkpoint: str | os.PathLike):
    """Would :func:`load_inference_model` load ``checkpoint`` into ``cfg``'s network? Checked without building
    real weights (the network on the ``meta`` device) or reading the tensors (the file is memory-mapped).

    Returns the :class:`~boir_core.model.LoadReport` of the load; raises
    :class:`~boir_core.model.CheckpointError` naming the file and every missing, unexpected or mis-shaped
    tensor (another backbone width, another keypoint count, the other architecture).
    """
    path = resolve_checkpoint(checkpoint)
    with torch.device("meta"):
        model = build_model(cfg, train=False, initialise=False)
    obj = read_checkpoint(path, mmap=True)  # as data only; names the file if it cannot be read
    if isinstance(obj, dict) and obj.get("format") == TRAIN_STATE_FORMAT:
        obj = obj["model_state"]  # our training state: its weights
    return check_weights(model, obj if isinstance(obj, dict) else path, source_name=str(path))

def _weights_preset(kind: str, train_config: Any) -> str:
    """What produced a weights file: the authors' release, or the preset of the config that trained ours."""
    if kind.endswith("-release") or kind.endswith("-release-training"):
        return "release (released weights)"
    if isinstance(train_config, dict):
        try:
            return preset_label(train_config)
        except (ConfigError, TypeError, AttributeError):
            pass
    return "not recorded in the weights"


def decode_dataset(cfg: Config, model, dataset, *, progress: bool = True, max_images: int = 0,
                   rank: int = 0, world_size: int = 1, runner=None):
    """Decode the images of a test-mode dataset. Returns (results, seconds network, seconds decode, n decoded).

    With ``world_size`` > 1 this process decodes only its round-robin share of the first ``max_images``
    images (0: all): image i belongs to rank ``i % world_size``. :func:`run_evaluation` merges the shares.
    ``runner``: an already built :func:`~boir_core.engine.backends.make_runner` of ``cfg.test.backend`` for
    ``model`` (default: built here).
    """
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
    prof = profile_for(cfg)
    kwargs = decode_mod.decode_kwargs_from_config(cfg.test, prof.flip_index, prof.sigmas)
    n = len(dataset) if max_images <= 0 else min(max_images, len(dataset))
    results, t_net, t_dec = [], 0.0, 0.0
    if runner is None:
        net = backends.make_runner(cfg.test.backend, model)  # test.backend: one of config.registry.BACKENDS
    elif getattr(runner, "name", None) != cfg.test.backend:
        raise ValueError(f"the runner given is a {getattr(runner, 'name', type(runner).__name__)!r} runner but "
                         f"test.backend={cfg.test.backend!r} (the metrics would name the wrong backend)")
    else:
        net = runner
    mine = range(rank, n, world_size)
    it = mine
    if progress:
        it = tqdm(it, desc="decode", leave=False)
    for i in it:
        s = dataset[i]
        r = decode_mod.decode(net, s["image"], s["meta"], image_id=s["image_id"], **kwargs)
        results.extend(r.poses)
        t_net += r.time_network
        t_dec += r.time_decode
    return results, t_net, t_dec, len(mine)


def _merge_shares(shares: list, image_ids: list) -> tuple[list, float, float, int]:
    """Join the (results, t_net, t_dec, n) of every rank, results in data-set order (as one process gives)."""
    order = {iid: i for i, iid in enumerate(image_ids)}
    results = sorted((r for share in shares for r in share[0]), key=lambda r: order[r["image_id"]])
    return (results, sum(s[1] for s in shares), sum(s[2] for s in shares), sum(s[3] for s in shares))


def run_evaluation(cfg: Config, checkpoint: str | os.PathLike | None, *, out_dir: str | os.PathLike | None = None,
                   key: str | None = None, progress: bool = True, model=None, runner=None) -> dict[str, Any]:
    """Decode the test split, evaluate it and write ``metrics.json`` (+ the results JSON) into ``out_dir``.

    ``model`` (already loaded) and ``runner`` (its ``test.backend`` runner, e.g. a notebook's) skip loading
    and building them again.

    Launched by ``torchrun --nproc_per_node=N`` (one process per GPU), every process decodes a round-robin
    share of the images on its own device; rank 0 merges the shares, evaluates and writes the files, and
    every process returns the same dictionary. Timings stay per image on one device.
    """
    owns_group = not (dist.is_available() and dist.is_initialized())
    dinfo = init_distributed(cfg.train.device)
    try:
        if model is None:
            model, _ = load_inference_model(cfg, checkpoint, dinfo.device)
        if out_dir is None:
            out_dir = default_eval_dir(cfg, checkpoint)
        out_dir = Path(out_dir)
        dataset = KeypointDataset.from_config(cfg, train=False)
        _check_people_to_evaluate(cfg, dataset)
        share = decode_dataset(cfg, model, dataset, progress=progress and dinfo.is_main,
                               max_images=cfg.test.max_images, rank=dinfo.rank, world_size=dinfo.world_size,
                               runner=runner)
        shares = all_gather_objects(share)
        out = None
        if dinfo.is_main:  # only rank 0 merges, evaluates and writes
            merged = _merge_shares(shares, dataset.image_ids)
            out = _evaluate_and_write(cfg, checkpoint, model, dataset, merged, out_dir, key, dinfo.device,
                                      dinfo.world_size)
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
    n = len(dataset) if cfg.test.max_images <= 0 else min(cfg.test.max_images, len(dataset))
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
    """Generate SynthCrowd (the kit's embedded data set, :func:`boir_core.data.synthetic.ensure_synthcrowd` with
    its defaults, as ``make demo`` does) when the config uses it and ``data.root`` is SynthCrowd's default
    folder (``data/synthcrowd``, ``data/synthcrowd14`` for 14 keypoints, from the working folder), e.g. a
    ``pip install``-ed kit run in a fresh folder; ``say`` tells where, why and how much. Returns whether it
    generated.

    - A complete set, or a folder holding something else (someone's own data), is used as it is.
    - An incomplete SynthCrowd at the default folder (:func:`~boir_core.data.synthetic.synthcrowd_state`: an
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
    make_it = (f"python -c \"from boir_core.data.synthetic import ensure_synthcrowd; ensure_synthcrowd('{root}', "
               f"num_keypoints={k})\"")
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
    s = synthetic.ensure_synthcrowd(root, num_keypoints=k, num_train=synthetic.DEFAULT_TRAIN,
                                    num_val=synthetic.DEFAULT_VAL)
    say(f"[data] SynthCrowd generated in {s.get('seconds', 0):.0f} s: {root.resolve()}")
    return True


def _evaluate_and_write(cfg: Config, checkpoint, model, dataset, merged, out_dir: Path, key: str | None,
                        device: torch.device, processes: int) -> dict[str, Any]:
    results, t_net, t_dec, n = merged
    out_dir.mkdir(parents=True, exist_ok=True)
    split = cfg.data.test_split
    res_path = out_dir / f"keypoints_{cfg.data.dataset}_{split}_results.json"
    atomic_write_json(res_path, results)
    timings = {"network_ms": 1000 * t_net / max(n, 1), "decode_ms": 1000 * t_dec / max(n, 1),
               "device": device_name(device)}
    upload = None
    if cfg.data.dataset == "coco" and split in ("test", "test-dev"):
        # COCO test-dev has no public labels: write the evaluation server's upload file instead
        split = "test-dev"  # the metrics file names it as Table 1 does (prepare's coco_test.json is test-dev)
        upload = write_testdev_results(results, out_dir, alg=cfg.model.arch, image_ids=dataset.image_ids)
        metrics: dict[str, Any] = {}
    else:
        gt: Any = dataset.ann_file
        if n < len(dataset):  # test.max_images: score against the decoded images only
            gt = _subset_gt(dataset.ann_file, set(dataset.image_ids[:n]))
        metrics = evaluate_results(results, gt, dataset=cfg.data.dataset, backend=cfg.test.evaluator,
                                   sigmas=dataset.profile.sigmas)
    params = count_parameters(model)
    metrics_path = write_metrics_json(
        out_dir / "metrics.json", dataset=cfg.data.dataset, split=split, metrics=metrics, config=cfg.to_dict(),
        checkpoint=str(resolve_checkpoint(checkpoint)) if checkpoint else None, timings=timings,
        params={"inference": params["inference"], "total": params["total"]}, key=key,
        demo=cfg.data.dataset in DEMO_DATASETS, preset=getattr(model, "weights_preset", None), images=n)
    return {"metrics": metrics, "metrics_path": metrics_path, "results_path": res_path, "timings": timings,
            "images": n, "processes": processes, "testdev_upload": upload}


def _subset_gt(ann_file: Path, image_ids: set) -> dict[str, Any]:
    gt = json.loads(Path(ann_file).read_text())
    gt["images"] = [im for im in gt["images"] if im["id"] in image_ids]
    gt["annotations"] = [a for a in gt.get("annotations", []) if a["image_id"] in image_ids]
    return gt


