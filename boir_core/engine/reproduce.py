"""The logic behind notebook 06: which runs each paper table needs, running them, collecting their results.

Every reproducible row of :mod:`boir_core.paper.values` carries a run ``key``. :data:`RUNS` says, per key,
which config evaluates it, which weights file it needs and on which data; :func:`plan` lists the runs of one
table (or all), :func:`reproduce` executes them and :func:`table_results` reads back the metrics files a
table is rendered from (:func:`boir_core.paper.render_table`).

Two modes
---------
Every metrics file records the preset that produced its weights (``preset``: ``paper``, ``release``,
``release (released weights)``, or a preset plus the switches departing from it) and each rendered row shows it.

* **real** (the paper's protocol): the data prepared under ``data_root`` (``coco/``, ``crowdpose/``,
  ``ochuman/``, laid out as :mod:`boir_core.data.profiles` expects) and weights under ``checkpoint_dir``.
  Tables 1, 2, 3, 6 evaluate released (or our own) checkpoints; Tables 4 and 7 train (``train=True``) and
  evaluate one config per row (``configs/ablations/<key>.yaml``); Table 5 is measured live by
  :func:`boir_core.engine.profile.profile`. A run whose data or weights are missing is skipped and its row
  shows the command that produces it. Data or weights that are there but wrong (a folder laid out another
  way, a CrowdPose file without ``crowdIndex``, a weights file of another architecture, width or keypoint
  count) stop the job before any run starts (:func:`preflight`, :class:`PreflightError`). ``overrides``
  (``key=value``) reach every real config: ``model.pretrained=<ImageNet file>`` offline, or a trial run's
  ``test.max_images=1 train.max_steps=2``; each metrics file records the config it ran.
* **demo** (no real data; what CI runs): every table runs on SynthCrowd. One small BoIR (the ``demo``
  weights of ``make demo`` when present, else ``tiny`` trained for a few iterations) stands in for every
  BoIR row, a tiny CID for the CID rows; CrowdPose rows use the 14-keypoint ``synthcrowd14`` variant with
  both models finetuned from the 17-keypoint ones for a few iterations (the paper's COCO → CrowdPose
  transfer, in miniature). A subset of ablation rows (``demo_ablation_rows``) is trained for a few
  iterations on ``tiny`` with the row's switches. Every metrics file says ``demo: true``; the renderer tags
  every cell and prints a DEMO banner. Table 5's parameter counts are the real W32 / W48 architectures
  (exact), its times the demo models on this machine.

Weights file names (``checkpoint_dir``)
---------------------------------------
The weights of a row are looked up by the name of the config that *trained* them, prefixed with the
architecture, as the finetune configs' ``train.transfer_from`` already spell it::

    boir_coco_w32      BoIR W32 COCO  (Tables 1, 3, 5, 6; OCHuman rows use these too, no finetuning)
    boir_coco_w48      BoIR W48 COCO
    cid_coco_w32       CID  W32 COCO
    boir_crowdpose_w32 / boir_crowdpose_w48 / cid_crowdpose_w32                 CrowdPose from scratch
    boir_crowdpose_w32_finetune / boir_crowdpose_w48_finetune / cid_crowdpose_w32_finetune   CrowdPose *
    t4_full, t7_beta_0.5, ...                                                   one per ablation row

each as ``<name>.pth``, ``<name>.pth.tar`` or ``<name>.pt`` (a released file or ours), or a run folder
``<name>/`` holding ``final.pt``. The order ``<arch>_<backbone>_<dataset>`` (``boir_w32_coco.pth``) is
accepted too. :func:`weight_candidates` lists every name tried.

Results layout (``results_dir``)::

    <results_dir>/<key>/metrics.json          one evaluation per run key (real data)
    <results_dir>/table5/<key>.json           Table 5: live parameter counts and latency (+ the key's AP)
    <results_dir>/train/<key>/                ablation training runs (train=True)
    <results_dir>/demo/...                    the same layout for demo runs, plus demo/models/ and data
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from ..config import Config, configs_dir, load_config
from ..data.profiles import REAL_DATASETS, get_profile
from .checkpointing import run_weights

__all__ = [
    "Run", "RUNS", "REAL_DATASETS", "TABLE5_CONFIGS", "table_numbers", "table_ids", "plan", "ablation_subset",
    "weight_candidates", "resolve_weights", "data_present", "detect_demo", "metrics_path", "table5_path",
    "real_config", "config_overrides_between", "ABLATION_SWITCHES", "demo_ablation_config", "ReproduceReport", "reproduce",
    "table_results", "render_report", "identical_configs", "held_out_keypoint_loss", "seed_study",
    "demo_data_root", "demo_pair_configs",
    "PreflightError", "preflight",
]

WEIGHT_SUFFIXES = (".pth", ".pth.tar", ".pt")


@dataclass(frozen=True)
class Run:
    """One run that fills table rows: evaluate ``config`` with ``weights`` on ``dataset`` ``split``.

    ``kind``: ``"evaluate"`` (released / our weights) or ``"ablation"`` (trained from ``config`` when asked).
    ``weights``: the weights file stem in ``checkpoint_dir`` (see the module docstring).
    ``overrides``: extra ``key=value`` config overrides (OCHuman val: ``data.test_split=val``).
    """

    key: str
    kind: str
    config: str
    weights: str
    arch: str
    dataset: str
    split: str
    overrides: tuple[str, ...] = ()
    tables: tuple[str, ...] = ()

    @property
    def num_keypoints(self) -> int:
        return get_profile(self.dataset).num_keypoints

    @property
    def config_path(self) -> Path:
        return configs_dir() / f"{self.config}.yaml"


def _runs() -> dict[str, Run]:
    from ..paper import ABLATION_KEYS, rows_for_key
    from ..paper.values import all_keys

    och_val = ("data.test_split=val",)
    # key: (config, weights, arch, dataset, split, overrides)
    spec: dict[str, tuple] = {}
    for arch, bbs in (("boir", ("w32", "w48")), ("cid", ("w32",))):
        for bb in bbs:
            pre = f"{arch}_{bb}"
            coco = f"coco_{bb}" if arch == "boir" else f"cid_coco_{bb}"
            crowd = f"crowdpose_{bb}" if arch == "boir" else f"cid_crowdpose_{bb}"
            och = f"ochuman_{bb}" if arch == "boir" else f"cid_ochuman_{bb}"
            coco_w = f"boir_coco_{bb}" if arch == "boir" else coco
            crowd_w = f"boir_{crowd}" if arch == "boir" else crowd
            spec[f"{pre}_coco_val"] = (coco, coco_w, arch, "coco", "val", ())
            spec[f"{pre}_coco_testdev"] = (f"{coco}_testdev", coco_w, arch, "coco", "test-dev", ())
            spec[f"{pre}_crowdpose_test"] = (crowd, crowd_w, arch, "crowdpose", "test", ())
            spec[f"{pre}_crowdpose_finetune_test"] = (f"{crowd}_finetune", f"{crowd_w}_finetune", arch,
                                                      "crowdpose", "test", ())
            spec[f"{pre}_ochuman_val"] = (och, coco_w, arch, "ochuman", "val", och_val)
            spec[f"{pre}_ochuman_test"] = (och, coco_w, arch, "ochuman", "test", ())
    for key in ABLATION_KEYS:
        spec[key] = (f"ablations/{key}", key, "boir", "coco", "val", ())
    out = {}
    for key in all_keys():
        cfg, w, arch, ds, split, ov = spec[key]  # KeyError here: a new table key without a run
        tables = tuple(t.id for t, _ in rows_for_key(key))
        kind = "ablation" if key in ABLATION_KEYS else "evaluate"
        out[key] = Run(key, kind, cfg, w, arch, ds, split, ov, tables)
    return out


#: Every run key of Tables 1-7 → its :class:`Run`.
RUNS: dict[str, Run] = _runs()

#: Table 5: which config's architecture each row's parameter count and latency are measured on.
TABLE5_CONFIGS = {"boir_w32_coco_val": "coco_w32", "boir_w48_coco_val": "coco_w48",
                  "cid_w32_coco_val": "cid_coco_w32"}


# ---------------------------------------------------------------------------------------------------
# planning

def table_numbers(table: Union[int, str]) -> list[int]:
    """``0`` (or "all") → [1, ..., 7]; ``n`` → [n]."""
    if str(table).strip().lower() in ("0", "all"):
        return list(range(1, 8))
    n = int(table)
    if not 1 <= n <= 7:
        raise ValueError(f"table must be 1-7 or 0 (all), got {table!r}")
    return [n]


def table_ids(table: Union[int, str]) -> list[str]:
    """Paper table ids (``4L``, ``4R``, ...) of ``table`` (0 = all)."""
    from ..paper import tables_for

    return [t.id for n in table_numbers(table) for t in tables_for(n)]


def ablation_subset(table: Union[int, str], rows: Union[int, str, Sequence[str]]) -> list[str]:
    """The ablation keys a demo trains: ``"all"``, a list of keys, or a count N — the first N rows of the
    requested ablation tables taken round-robin over their parts (4L, 4R, 7L, 7R), so that N = 2 with
    ``table=0`` trains one row of Table 4 and one of Table 7."""
    from ..paper import TABLES

    ids = [i for i in table_ids(table) if i[0] in "47"]
    per_part = [[r.key for r in TABLES[i].rows] for i in ids]
    everything = [k for part in per_part for k in part]
    if isinstance(rows, str) and rows.strip().lower() == "all":
        return everything
    if isinstance(rows, (list, tuple)):
        unknown = [k for k in rows if k not in RUNS or RUNS[k].kind != "ablation"]
        if unknown:
            raise ValueError(f"not ablation keys: {unknown}")
        return [k for k in rows if k in everything]
    n = int(rows)
    # per table: its parts round-robin (4L[0], 4R[0], 4L[1], ...); then the tables interleaved
    per_table: dict[str, list[str]] = {}
    for i, part in zip(ids, per_part):
        per_table.setdefault(i[0], []).append(part)
    queues = []
    for parts in per_table.values():
        q = [part[j] for j in range(max(map(len, parts))) for part in parts if j < len(part)]
        queues.append(q)
    order = [q[j] for j in range(max(map(len, queues), default=0)) for q in queues if j < len(q)]
    return order[:max(n, 0)]


def plan(table: Union[int, str], *, demo: bool = False,
         demo_ablation_rows: Union[int, str, Sequence[str]] = 2) -> list[Run]:
    """The runs ``table`` (0 = all) needs, evaluations first, each key once.

    Table 5 needs the COCO val evaluations of its rows (its AP column); its parameter counts and times are
    measured by :func:`reproduce` itself. In demo mode only ``demo_ablation_rows`` ablation rows are run.
    """
    from ..paper import TABLES

    keys: list[str] = []
    for tid in table_ids(table):
        for row in TABLES[tid].rows:
            keys += [k for k in row.run_keys() if k not in keys]
    runs = [RUNS[k] for k in keys]
    evals = [r for r in runs if r.kind == "evaluate"]
    abl = [r for r in runs if r.kind == "ablation"]
    if demo:
        chosen = ablation_subset(table, demo_ablation_rows)
        abl = [RUNS[k] for k in chosen]
    return evals + abl


# ---------------------------------------------------------------------------------------------------
# files and data

def _weight_stems(run: Run) -> list[str]:
    stems = [run.weights]
    parts = run.weights.split("_")
    # boir_coco_w32[_finetune] -> boir_w32_coco[_finetune]
    if len(parts) >= 3 and parts[0] in ("boir", "cid") and parts[2].startswith("w"):
        stems.append("_".join([parts[0], parts[2], parts[1], *parts[3:]]))
    return stems


def weight_candidates(run: Union[Run, str], checkpoint_dir: Union[str, os.PathLike]) -> list[Path]:
    """Every path tried for ``run``'s weights, in order (files first, then run folders)."""
    run = RUNS[run] if isinstance(run, str) else run
    d = Path(checkpoint_dir)
    stems = _weight_stems(run)
    return [d / f"{s}{suf}" for s in stems for suf in WEIGHT_SUFFIXES] + [d / s for s in stems]


def resolve_weights(run: Union[Run, str], checkpoint_dir: Union[str, os.PathLike]) -> Optional[Path]:
    """The first existing weights of ``run`` in ``checkpoint_dir`` (a run folder needs ``final.pt`` or
    ``checkpoints/last.pt``), or None."""
    for p in weight_candidates(run, checkpoint_dir):
        if p.is_file():
            return p
        if p.is_dir() and run_weights(p) is not None:
            return p
    return None


def _profile_split(dataset: str, split: str) -> str:
    return "test" if split == "test-dev" else split


def data_present(data_root: Union[str, os.PathLike], dataset: str, split: str) -> bool:
    """Are ``<data_root>/<dataset>``'s annotation file and image folder of ``split`` there?"""
    prof = get_profile(dataset)
    root = Path(data_root) / dataset
    s = _profile_split(dataset, split)
    return prof.ann_file(root, s).is_file() and prof.image_dir(root, s).is_dir()


def detect_demo(demo: Union[str, bool], data_root: Union[str, os.PathLike]) -> bool:
    """``demo="auto"``: demo mode exactly when none of COCO val, CrowdPose test, OCHuman val/test is under
    ``data_root``; ``True`` / ``False`` (or "true" / "false") force it."""
    if isinstance(demo, bool):
        return demo
    text = str(demo).strip().lower()
    if text in ("true", "yes", "1", "on", "demo"):
        return True
    if text in ("false", "no", "0", "off", "real"):
        return False
    if text != "auto":
        raise ValueError(f"demo must be 'auto', True or False, got {demo!r}")
    probes = [("coco", "val"), ("crowdpose", "test"), ("ochuman", "val"), ("ochuman", "test")]
    return not any(data_present(data_root, d, s) for d, s in probes)


def _base(results_dir: Union[str, os.PathLike], demo: bool) -> Path:
    return Path(results_dir) / "demo" if demo else Path(results_dir)


def metrics_path(results_dir: Union[str, os.PathLike], key: str, demo: bool = False) -> Path:
    """Where the evaluation of ``key`` writes its metrics JSON."""
    return _base(results_dir, demo) / key / "metrics.json"


def table5_path(results_dir: Union[str, os.PathLike], key: str, demo: bool = False) -> Path:
    """Where the live Table 5 measurement of ``key`` is written."""
    return _base(results_dir, demo) / "table5" / f"{key}.json"


# ---------------------------------------------------------------------------------------------------
# configs

def real_config(run: Union[Run, str], data_root: Union[str, os.PathLike], device: str = "cpu",
                extra: Sequence[str] = ()) -> Config:
    """``run``'s config with its data under ``<data_root>/<dataset>`` and ``train.device``."""
    run = RUNS[run] if isinstance(run, str) else run
    return load_config(run.config_path, [*run.overrides, f"data.root={Path(data_root) / run.dataset}",
                                         f"train.device={device}", *extra])


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def config_overrides_between(base: Config, target: Config, sections: Iterable[str] = ("model", "loss")
                             ) -> list[str]:
    """``key=value`` overrides that turn ``base`` into ``target`` within ``sections`` (YAML values)."""
    import yaml

    a, b = _flatten(base.to_dict()), _flatten(target.to_dict())
    out = []
    for k, v in b.items():
        if k.split(".")[0] in sections and a.get(k) != v:
            out.append(f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out


#: The settings Tables 4 and 7 vary; a demo ablation run takes these from the row's config.
ABLATION_SWITCHES = ("model.bbox_head", "model.emb_dim", "loss.bbox_mask", "loss.bbox_mask_variant",
                     "loss.emb_loss", "loss.distance", "loss.beta", "loss.temperature", "loss.weighting",
                     "loss.bbox_weight", "loss.bbox_mask_weight")


def demo_ablation_config(key: str, data_root: Union[str, os.PathLike], *, iters: int = 2,
                         device: str = "cpu", base: str = "tiny") -> Config:
    """The demo stand-in of ablation row ``key``: ``base`` (tiny) with the row's switches
    (:data:`ABLATION_SWITCHES` of ``configs/ablations/<key>.yaml``: heads, losses, β, D), ``iters``
    iterations."""
    import yaml

    flat = _flatten(load_config(RUNS[key].config_path).to_dict())
    switches = [f"{k}={yaml.safe_dump(flat[k], default_flow_style=True).strip().removesuffix('...').strip()}"
                for k in ABLATION_SWITCHES]
    return load_config(base, [*switches, f"name={key}", f"data.root={data_root}", f"train.device={device}",
                              "train.epochs=1", f"train.max_iters_per_epoch={int(iters)}",
                              "train.log_every=1000"])


def identical_configs(keys: Optional[Iterable[str]] = None, ignore: Iterable[str] = ("name",)
                      ) -> list[tuple[str, ...]]:
    """Groups (≥ 2 keys) of ablation rows whose resolved configs are identical apart from ``ignore``.

    ``keys`` default to every ablation row. Each config is loaded with its ``base:`` chain and defaults,
    so rows that spell one setting differently (or not at all) still match. Groups keep the table order.
    """
    keys = [k for k in (keys if keys is not None else (k for k, r in RUNS.items() if r.kind == "ablation"))]
    skip = set(ignore)
    groups: dict[tuple, list[str]] = {}
    for k in keys:
        flat = _flatten(load_config(RUNS[k].config_path).to_dict())
        sig = tuple(sorted((n, repr(v)) for n, v in flat.items() if n not in skip))
        groups.setdefault(sig, []).append(k)
    return [tuple(g) for g in groups.values() if len(g) > 1]


def held_out_keypoint_loss(cfg: Config, weights, max_images: int = 8, device: str = "cpu") -> float:
    """The instance keypoint focal loss (the primary task, common to BoIR and CID) of ``weights`` on the first
    ``max_images`` images of the test split, without augmentation, at the ground-truth centers (inference
    network, eval mode). A continuous score where a few training iterations leave AP at 0."""
    import torch

    from ..data import KeypointDataset, collate_train
    from ..losses import instance_heatmap_loss
    from .runner import load_inference_model

    model, _ = load_inference_model(cfg, weights, device)
    ds = KeypointDataset.from_config(cfg, split=cfg.data.test_split, train=True, flip=0.0, max_rotation=0.0,
                                     min_scale=1.0, max_scale=1.0, max_translate=0, center_jitter=False)
    n = len(ds) if max_images <= 0 else min(len(ds), int(max_images))
    batch = collate_train([ds[i] for i in range(n)])
    with torch.no_grad():
        feats = model.features(batch["image"].to(device))
        logits = model.instance_heatmaps(feats, batch["instance_coord"].to(device), batch["instance_imgid"].to(device))
        loss = instance_heatmap_loss(logits, batch["instance_heatmap"].to(device), batch["instance_mask"].to(device),
                                     max_instances=0)
    return float(loss)


def demo_data_root(results_dir: Union[str, os.PathLike], num_keypoints: int = 17, num_val: int = 4) -> Path:
    """The SynthCrowd set demo mode uses under ``results_dir`` (generated once)."""
    return _demo_data(_base(results_dir, True), num_keypoints, num_val)


def demo_pair_configs(data_root: Union[str, os.PathLike], iters: int = 4, device: str = "cpu") -> dict[str, Config]:
    """The tiny BoIR and the tiny CID that stand in for the paper's BoIR-vs-CID comparison in demo mode."""
    ov = [f"data.root={data_root}", f"train.device={device}", "train.epochs=1",
          f"train.max_iters_per_epoch={int(iters)}", "train.log_every=1000"]
    return {"BoIR": load_config("tiny", [*ov, "name=boir_demo"]),
            "CID": load_config("tiny", [*ov, "name=cid_demo", "model.arch=cid", "model.bbox_head=false",
                                        "loss.bbox_mask=false"])}


def seed_study(configs: dict[str, Config], seeds: Sequence[int], work_dir: Union[str, os.PathLike], *,
               val_images: int = 8, device: str = "cpu") -> dict[str, list[float]]:
    """Train every config once per seed (``train.seed``) and score it with :func:`held_out_keypoint_loss`.

    Returns ``{name: [score of seed s for s in seeds]}``: the same seed gives both configs the same data
    order and augmentation, so the lists are paired by position. Finished runs are reused.
    """
    out: dict[str, list[float]] = {}
    for name, cfg in configs.items():
        out[name] = []
        for s in seeds:
            c = cfg.override(f"train.seed={int(s)}", f"train.device={device}")
            weights = _train(c, Path(work_dir) / f"{name}_seed{int(s)}", 1, _log_default)
            out[name].append(held_out_keypoint_loss(c, weights, val_images, device))
    return out


# ---------------------------------------------------------------------------------------------------
# running

@dataclass
class ReproduceReport:
    """What :func:`reproduce` did: the mode, the plan, a status line per key and where results lie."""

    table: int
    demo: bool
    results_dir: Path
    device: str
    runs: list[Run] = field(default_factory=list)
    status: dict[str, str] = field(default_factory=dict)
    profiles: dict[str, dict] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        mode = "DEMO (SynthCrowd stand-in data)" if self.demo else "real data"
        lines = [f"mode: {mode}; device: {self.device}; results: {self.results_dir}; {self.seconds:.0f} s"]
        lines += [f"  {k:<36} {v}" for k, v in self.status.items()]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _log_default(msg: str) -> None:
    print(msg, flush=True)


def _device(gpus: int) -> str:
    import torch

    return "cuda" if int(gpus) > 0 and torch.cuda.is_available() else "cpu"


def _train(cfg: Config, run_dir: Path, gpus: int, log: Callable[[str], None]) -> Path:
    """Train ``cfg`` into ``run_dir`` (in process, or under torchrun for several GPUs); returns final.pt."""
    if int(gpus) > 1:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg_file = cfg.dump(run_dir / "requested_config.yaml")
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={int(gpus)}", "-m",
               "boir_core", "train", "--config", str(cfg_file), "--run-dir", str(run_dir), "--quiet"]
        log("[reproduce] " + " ".join(cmd))
        subprocess.run(cmd, check=True)
        return run_dir / "final.pt"
    from .train import train

    # a finished run with the same config is reused as it is; a changed config (e.g. a new demo config) retrains
    return Path(train(cfg, run_dir, resume="or-restart", progress=False).final_weights)


def _evaluate(cfg: Config, weights, out: Path, key: str, model=None) -> dict:
    from .runner import run_evaluation

    return run_evaluation(cfg, weights, out_dir=out.parent, key=key, progress=False, model=model)


def reproduce(table: Union[int, str] = 0, *, data_root: Union[str, os.PathLike] = "data",
              checkpoint_dir: Union[str, os.PathLike] = "checkpoints", train: bool = False, gpus: int = 1,
              results_dir: Union[str, os.PathLike] = "runs/reproduce/results", demo: Union[str, bool] = "auto",
              demo_ablation_rows: Union[int, str, Sequence[str]] = 2, demo_images: int = 4,
              demo_train_iters: int = 2, demo_checkpoint: Optional[str] = "default",
              overwrite: bool = False, latency_repeats: int = 10, overrides: Sequence[str] = (),
              log: Callable[[str], None] = _log_default) -> ReproduceReport:
    """Run what ``table`` (0 = all) needs and write its metrics files; see the module docstring.

    Existing metrics files are kept unless ``overwrite``. Returns a :class:`ReproduceReport`; render with
    :func:`table_results` + :func:`boir_core.paper.render_table`, or :func:`render_report`.
    ``demo_checkpoint="default"`` means :func:`boir_core.paths.default_checkpoint` (None: train a tiny BoIR).
    ``overrides``: ``key=value`` config overrides for every real-mode run (e.g. ``model.pretrained=<ImageNet
    file>`` offline, ``test.max_images=500``); each metrics file records the config it ran. Real mode first
    runs :func:`preflight` and raises :class:`PreflightError` before any run starts.
    """
    t0 = time.time()
    if demo_checkpoint == "default":
        from ..paths import default_checkpoint

        demo_checkpoint = default_checkpoint("boir")
    is_demo = detect_demo(demo, data_root)
    device = _device(gpus)
    rep = ReproduceReport(int(str(table).replace("all", "0")), is_demo, Path(results_dir), device)
    rep.runs = plan(table, demo=is_demo, demo_ablation_rows=demo_ablation_rows)
    numbers = table_numbers(table)
    if is_demo:
        _run_demo(rep, numbers, demo_images=demo_images, iters=demo_train_iters,
                  demo_checkpoint=demo_checkpoint, overwrite=overwrite, log=log)
    else:
        preflight(rep.runs, data_root=data_root, checkpoint_dir=checkpoint_dir, results_dir=rep.results_dir,
                  train=train, overwrite=overwrite, overrides=overrides, device=device)
        _run_real(rep, data_root=data_root, checkpoint_dir=checkpoint_dir, train=train, gpus=gpus,
                  overwrite=overwrite, overrides=overrides, log=log)
    if 5 in numbers:
        _table5(rep, repeats=latency_repeats, overrides=() if is_demo else overrides, log=log)
    rep.profiles.pop("_demo_models", None)  # the demo models handed to Table 5, never a Table 5 row
    rep.seconds = time.time() - t0
    return rep


def _run_real(rep: ReproduceReport, *, data_root, checkpoint_dir, train: bool, gpus: int, overwrite: bool,
              overrides: Sequence[str], log) -> None:
    for run in rep.runs:
        out = metrics_path(rep.results_dir, run.key)
        if out.is_file() and not overwrite:
            rep.status[run.key] = f"kept {out}"
            continue
        split = _profile_split(run.dataset, run.split)
        if not data_present(data_root, run.dataset, split):
            rep.status[run.key] = f"skipped: no {run.dataset} {split} under {Path(data_root) / run.dataset}"
            continue
        weights = resolve_weights(run, checkpoint_dir)
        cfg = real_config(run, data_root, rep.device, overrides)
        if run.kind == "ablation" and train:
            if not data_present(data_root, run.dataset, cfg.data.train_split):
                rep.status[run.key] = f"skipped: no {run.dataset} {cfg.data.train_split} split to train on"
                continue
            log(f"[reproduce] training {run.key} ({run.config})")
            weights = _train(cfg, rep.results_dir / "train" / run.key, gpus, log)
        if weights is None:
            tried = ", ".join(p.name for p in weight_candidates(run, checkpoint_dir)[:3])
            rep.status[run.key] = f"skipped: no weights in {checkpoint_dir} (tried {tried}, ...)"
            continue
        log(f"[reproduce] evaluating {run.key}: {run.config} with {weights}")
        res = _evaluate(cfg, weights, out, run.key)
        rep.status[run.key] = f"evaluated {weights} -> {out} (preset {_preset_of(res)})"


class PreflightError(ValueError):
    """Real mode found problems before any run started; the message lists every one (data laid out
    differently, a CrowdPose file without ``crowdIndex``, weights that do not fit their row's network)."""


def preflight(runs: Sequence[Run], *, data_root, checkpoint_dir, results_dir=None, train: bool = False,
              overwrite: bool = False, overrides: Sequence[str] = (), device: str = "cpu") -> None:
    """Check what real mode will read, before it runs anything: every data set folder the runs use
    (:func:`boir_core.data.layout.check_layout`) and every weights file it will evaluate
    (:func:`boir_core.engine.runner.check_inference_weights`: the row's architecture, backbone width and
    keypoint count, tensor by tensor). Missing data or weights are not problems (those rows are skipped);
    runs whose metrics file is kept are not checked. Raises :class:`PreflightError` listing every problem.
    """
    from ..data.layout import DataLayoutError, check_layout
    from ..model import CheckpointError
    from .runner import check_inference_weights

    problems: list[str] = []
    needed: dict[str, list[str]] = {}
    for run in runs:
        needed.setdefault(run.dataset, []).append(_profile_split(run.dataset, run.split))
        if run.kind == "ablation" and train:
            needed[run.dataset].append(real_config(run, data_root, device, overrides).data.train_split)
    present: dict[tuple[str, str], bool] = {}
    for dataset, splits in needed.items():
        try:
            present.update({(dataset, s): ok for s, ok in check_layout(data_root, dataset, splits).items()})
        except DataLayoutError as e:
            problems.append(str(e))
    checked: dict[tuple, Optional[str]] = {}
    for run in runs:
        if run.kind == "ablation" and train:
            continue  # trained here: its weights do not exist yet
        if results_dir is not None and metrics_path(results_dir, run.key).is_file() and not overwrite:
            continue
        if not present.get((run.dataset, _profile_split(run.dataset, run.split))):
            continue
        weights = resolve_weights(run, checkpoint_dir)
        if weights is None:
            continue
        cfg = real_config(run, data_root, device, overrides)
        sig = (str(weights), repr(cfg.model), cfg.num_keypoints)
        if sig not in checked:
            try:
                check_inference_weights(cfg, weights)
                checked[sig] = None
            except (CheckpointError, FileNotFoundError) as e:
                checked[sig] = str(e)
        if checked[sig] is not None:
            problems.append(f"{run.key} ({run.config}: {cfg.model.arch} {cfg.model.backbone}, "
                            f"K={cfg.num_keypoints}) reads {weights}:\n  {checked[sig]}")
    if problems:
        raise PreflightError(f"real mode: {len(problems)} problem(s) found before any run started\n- "
                             + "\n- ".join(problems))


def _preset_of(result: dict) -> str:
    import json

    return json.loads(Path(result["metrics_path"]).read_text()).get("preset") or "not recorded"


# ---- demo mode --------------------------------------------------------------------------------------

def _demo_data(base: Path, num_keypoints: int, num_val: int) -> Path:
    from ..data.synthetic import ensure_synthcrowd

    root = base / "data" / ("synthcrowd" if num_keypoints == 17 else "synthcrowd14")
    ensure_synthcrowd(root, num_keypoints=num_keypoints, num_train=16, num_val=max(int(num_val), 1))
    return root


def _demo_models(rep: ReproduceReport, needed: set[tuple[str, int]], roots: dict[int, Path], iters: int,
                 demo_checkpoint: Optional[str], log) -> dict[tuple[str, int], tuple[Config, Path]]:
    """(arch, K) → (config, weights) of the small stand-in models, trained once (cached by folder)."""
    base = _base(rep.results_dir, True) / "models"
    dev = f"train.device={rep.device}"
    short = ["train.epochs=1", f"train.max_iters_per_epoch={int(iters)}", "train.log_every=1000"]
    out: dict[tuple[str, int], tuple[Config, Path]] = {}
    for arch in ("boir", "cid"):
        if not any(a == arch for a, _ in needed):
            continue
        if arch == "boir" and demo_checkpoint and Path(demo_checkpoint).is_file():
            from .runner import checkpoint_config

            cfg = checkpoint_config(demo_checkpoint, None, [f"data.root={roots[17]}", dev])
            out[(arch, 17)] = (cfg, Path(demo_checkpoint))
            rep.notes.append(f"BoIR rows: the trained demo weights {demo_checkpoint} ({cfg.name} config)")
        else:
            ov = [f"data.root={roots[17]}", dev, *short, f"name={arch}_demo"]
            if arch == "cid":
                ov += ["model.arch=cid", "model.bbox_head=false", "loss.bbox_mask=false"]
            cfg = load_config("tiny", ov)
            log(f"[reproduce] demo: training a tiny {arch.upper()} for {iters} iterations")
            out[(arch, 17)] = (cfg, _train(cfg, base / f"{arch}17_it{iters}", 1, log))
        if (arch, 14) in needed:
            cfg17, w17 = out[(arch, 17)]
            cfg = cfg17.override("data.dataset=synthcrowd14", f"data.root={roots[14]}", *short,
                                 f"train.transfer_from={w17}", f"name={cfg17.name}_synthcrowd14")
            log(f"[reproduce] demo: finetuning the {arch.upper()} on SynthCrowd-14 for {iters} iterations")
            out[(arch, 14)] = (cfg, _train(cfg, base / f"{arch}14_{cfg17.name}_it{iters}", 1, log))
    return out


def _run_demo(rep: ReproduceReport, numbers: list[int], *, demo_images: int, iters: int,
              demo_checkpoint: Optional[str], overwrite: bool, log) -> None:
    from .runner import load_inference_model

    base = _base(rep.results_dir, True)
    evals = [r for r in rep.runs if r.kind == "evaluate"]
    abl = [r for r in rep.runs if r.kind == "ablation"]
    ks = {r.num_keypoints for r in evals} | ({17} if abl or 5 in numbers else set())
    roots = {k: _demo_data(base, k, demo_images) for k in sorted(ks | {17})}
    needed = {(r.arch, r.num_keypoints) for r in evals}
    if 5 in numbers:
        needed |= {("boir", 17), ("cid", 17)}
    models = _demo_models(rep, needed, roots, iters, demo_checkpoint, log)
    rep.profiles["_demo_models"] = {f"{a}{k}": (cfg, w) for (a, k), (cfg, w) in models.items()}
    loaded: dict[tuple[str, int], Any] = {}
    for run in evals:
        out = metrics_path(rep.results_dir, run.key, demo=True)
        if out.is_file() and not overwrite:
            rep.status[run.key] = f"kept {out} [demo]"
            continue
        cfg, weights = models[(run.arch, run.num_keypoints)]
        real = load_config(run.config_path, list(run.overrides))
        # the real run's test settings (OCHuman: pool kernel 11, OKS-NMS 0.7), on a few SynthCrowd images
        cfg = cfg.override(f"test.center_pool_kernel={real.test.center_pool_kernel}",
                           f"test.oks_nms_threshold={real.test.oks_nms_threshold}",
                           f"test.max_images={int(demo_images)}", "data.test_split=val")
        if (run.arch, run.num_keypoints) not in loaded:
            loaded[(run.arch, run.num_keypoints)] = load_inference_model(cfg, weights, rep.device)[0]
        _evaluate(cfg, weights, out, run.key, model=loaded[(run.arch, run.num_keypoints)])
        rep.status[run.key] = f"evaluated {cfg.name} on {demo_images} {cfg.data.dataset} val images [demo]"
    for run in abl:
        out = metrics_path(rep.results_dir, run.key, demo=True)
        if out.is_file() and not overwrite:
            rep.status[run.key] = f"kept {out} [demo]"
            continue
        cfg = demo_ablation_config(run.key, roots[17], iters=iters, device=rep.device)
        cfg = cfg.override(f"test.max_images={int(demo_images)}")
        log(f"[reproduce] demo: training ablation {run.key} for {iters} iterations on tiny")
        weights = _train(cfg, base / "train" / f"{run.key}_it{iters}", 1, log)
        _evaluate(cfg, weights, out, run.key)
        rep.status[run.key] = f"trained {iters} iterations + evaluated on {demo_images} images [demo]"
    skipped = [k for k in (r.key for r in plan(rep.table, demo=False)) if RUNS[k].kind == "ablation"
               and k not in rep.status]
    if skipped:
        rep.notes.append(f"demo: {len(skipped)} ablation rows not run (demo_ablation_rows); "
                         f"'all' runs every row")


# ---- Table 5 ----------------------------------------------------------------------------------------

def _table5(rep: ReproduceReport, *, repeats: int, overrides: Sequence[str] = (), log) -> None:
    """Parameter counts of the real W32 / W48 / CID architectures (exact) and latency, batch 1, flip.

    Real mode times the real configs on ``rep.device``; demo mode times the demo stand-in models. Each row
    gets ``table5/<key>.json`` with the key's AP (when its evaluation exists) beside them.
    """
    import json

    import torch

    from .evaluate import write_metrics_json
    from .profile import profile

    demo_models = rep.profiles.pop("_demo_models", {})
    latency_cache: dict[str, dict] = {}
    for key, cfg_name in TABLE5_CONFIGS.items():
        real_cfg = load_config(cfg_name, [f"train.device={rep.device}", *overrides])
        with torch.device("meta"):  # counting only: no weights are allocated, W48 takes a fraction of a second
            params = profile(real_cfg, params_only=True)["params"]
        if rep.demo:
            arch = RUNS[key].arch
            cfg, _ = demo_models[f"{arch}17"]
            lat_cfg = cfg.override(f"train.device={rep.device}")
        else:
            lat_cfg = real_cfg
        if lat_cfg.name + lat_cfg.model.arch not in latency_cache:
            log(f"[reproduce] Table 5: timing {lat_cfg.name} ({lat_cfg.model.arch}) on {rep.device}")
            latency_cache[lat_cfg.name + lat_cfg.model.arch] = profile(lat_cfg, repeats=repeats,
                                                                       warmup=2 if repeats > 2 else 1)
        lat = latency_cache[lat_cfg.name + lat_cfg.model.arch]["latency"]
        ev = metrics_path(rep.results_dir, key, rep.demo)
        evaluation = json.loads(ev.read_text()) if ev.is_file() else {}
        metrics = evaluation.get("metrics", {})
        path = table5_path(rep.results_dir, key, rep.demo)
        write_metrics_json(
            path, dataset="synthcrowd" if rep.demo else "coco", split="val", metrics=metrics, config=real_cfg,
            timings={"network_ms": lat["network_ms"], "decode_ms": lat["decode_ms"], "device": lat["device"]},
            params={"inference": params["inference"], "total": params["total"]}, key=key, demo=rep.demo,
            preset=evaluation.get("preset"))  # the weights behind the AP column (counts / times: any preset)
        rep.profiles[key] = {"config": cfg_name, "params": params, "latency": lat,
                             "timed_config": lat_cfg.name}
        rep.status[f"table5:{key}"] = (f"{params['inference']:,} parameters ({cfg_name}); "
                                       f"{lat['network_ms'] + lat['decode_ms']:.1f} ms ({lat_cfg.name}, "
                                       f"{lat['device']})")


# ---------------------------------------------------------------------------------------------------
# reading back

def table_results(table_id: str, results_dir: Union[str, os.PathLike], demo: bool = False) -> dict:
    """``{key: Result}`` for one table id (``"1"``, ``"4L"``, ``"5"``, ...) from its files in
    ``results_dir`` (missing files: no result, the row shows its command)."""
    from ..paper import TABLES, load_results

    t = TABLES[str(table_id)]
    files = []
    for row in t.rows:
        for key in row.run_keys():
            p = table5_path(results_dir, key, demo) if t.number == 5 else metrics_path(results_dir, key, demo)
            if p.is_file():
                files.append(p)
    return load_results(files) if files else {}


def render_report(rep: ReproduceReport) -> dict[str, str]:
    """Markdown of every table ``rep`` covers: ``{table id: text}``."""
    from ..paper import render_table

    return {tid: render_table(tid, table_results(tid, rep.results_dir, rep.demo)) for tid in table_ids(rep.table)}
