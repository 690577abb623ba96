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
  :func:`boir_core.engine.inference.profile.profile`. A run whose data or weights are missing is skipped and its row
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

Which runs each table needs, where weights and results are: :mod:`boir_core.paper.plan`; the
seed-noise study of notebook 06: :mod:`boir_core.paper.seeds`.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence, Union

import torch

from ..config import Config, load_config
from ..data.sources.layout import DataLayoutError, check_layout
from ..data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd
from ..engine.evaluation.evaluate import Measurements, MetricsProvenance, write_metrics_json
from ..engine.evaluation.runner import check_inference_weights, checkpoint_config, load_inference_model, run_evaluation
from ..engine.inference.predictor import Predictor
from ..engine.inference.profile import LatencySettings, profile
from ..engine.training import train as training  # train() through its module (tests stand in for it there)
from ..io import atomic_write_text
from ..model import CheckpointError
from ..paths import default_checkpoint
from .plan import (
    ABLATION_SWITCHES,
    REAL_DATASETS,
    RESULTS_DIR,
    RUNS,
    TABLE5_CONFIGS,
    Run,
    _base,
    _profile_split,
    ablation_subset,
    config_overrides_between,
    data_present,
    demo_ablation_config,
    detect_demo,
    identical_configs,
    metrics_path,
    plan,
    real_config,
    resolve_weights,
    table5_path,
    table_ids,
    table_numbers,
    table_results,
    weight_candidates,
)
from .render import render_table

__all__ = [
    "ReproduceOptions", "ReproduceReport", "reproduce", "render_report", "write_tables", "PreflightError", "preflight",
    # re-exported from boir_core.paper.plan (the names notebook 06 and the tests read here)
    "Run", "RUNS", "REAL_DATASETS", "TABLE5_CONFIGS", "RESULTS_DIR", "table_numbers", "table_ids", "plan",
    "ablation_subset", "weight_candidates", "resolve_weights", "data_present", "detect_demo", "metrics_path",
    "table5_path", "real_config", "config_overrides_between", "ABLATION_SWITCHES", "demo_ablation_config",
    "identical_configs", "table_results",
]

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

    # a finished run with the same config is reused as it is; a changed config (e.g. a new demo config) retrains
    return Path(training.train(cfg, run_dir, resume="or-restart", progress=False).final_weights)


def _evaluate(cfg: Config, weights, out: Path, key: str, model=None) -> dict:
    """Evaluate ``weights`` into ``out``'s folder for the row ``key``; ``model``: the network already loaded."""
    predictor = None if model is None else Predictor(cfg, model=model)
    return run_evaluation(cfg, weights, out_dir=out.parent, key=key, progress=False, predictor=predictor)


@dataclass(frozen=True)
class ReproduceOptions:
    """How :func:`reproduce` runs a table (the ``key=value`` arguments of ``boir reproduce``, notebook 06's
    parameters).

    ``data_root`` / ``checkpoint_dir``: the real data and weights; ``train``: train the ablation rows (real
    mode); ``gpus``: 0 = CPU, more than 1 trains under torchrun; ``results_dir``: where the metrics files go;
    ``demo``: ``"auto"`` (demo mode when no real data is found), True or False; ``demo_ablation_rows``: which
    ablation rows demo mode trains (a count, ``"all"`` or keys); ``demo_images`` / ``demo_train_iters``: the
    demo's images per evaluation and training iterations; ``demo_checkpoint``: the BoIR weights of demo mode
    (``"default"``: :func:`boir_core.paths.default_checkpoint`; None: train a tiny BoIR); ``overwrite``: redo
    existing metrics files (else kept); ``latency_repeats``: Table 5's timed repeats; ``overrides``: ``key=value``
    config overrides for every real-mode run (e.g. ``model.pretrained=<ImageNet file>`` offline,
    ``test.max_images=500``); each metrics file records the config it ran.
    """

    data_root: Union[str, os.PathLike] = "data"
    checkpoint_dir: Union[str, os.PathLike] = "checkpoints"
    train: bool = False
    gpus: int = 1
    results_dir: Union[str, os.PathLike] = RESULTS_DIR
    demo: Union[str, bool] = "auto"
    demo_ablation_rows: Union[int, str, Sequence[str]] = 2
    demo_images: int = 4
    demo_train_iters: int = 2
    demo_checkpoint: Optional[str] = "default"
    overwrite: bool = False
    latency_repeats: int = 10
    overrides: Sequence[str] = ()


def reproduce(table: Union[int, str] = 0, options: ReproduceOptions = ReproduceOptions(), *,
              log: Callable[[str], None] = _log_default) -> ReproduceReport:
    """Run what ``table`` (0 = all) needs, as ``options`` say, and write its metrics files; see the module docstring.

    Returns a :class:`ReproduceReport`; render with :func:`table_results` + :func:`boir_core.paper.render_table`,
    or :func:`render_report`. Real mode first runs :func:`preflight` and raises :class:`PreflightError` before
    any run starts. ``log`` receives the progress lines.
    """
    t0 = time.time()
    if options.demo_checkpoint == "default":
        options = replace(options, demo_checkpoint=default_checkpoint("boir"))
    is_demo = detect_demo(options.demo, options.data_root)
    device = _device(options.gpus)
    rep = ReproduceReport(int(str(table).replace("all", "0")), is_demo, Path(options.results_dir), device)
    rep.runs = plan(table, demo=is_demo, demo_ablation_rows=options.demo_ablation_rows)
    numbers = table_numbers(table)
    if is_demo:
        _run_demo(rep, numbers, options, log)
    else:
        preflight(rep.runs, options, device=device)
        _run_real(rep, options, log)
    if 5 in numbers:
        _table5(rep, repeats=options.latency_repeats, overrides=() if is_demo else options.overrides, log=log)
    rep.profiles.pop("_demo_models", None)  # the demo models handed to Table 5, never a Table 5 row
    rep.seconds = time.time() - t0
    return rep


def _run_real(rep: ReproduceReport, options: ReproduceOptions, log) -> None:
    data_root, checkpoint_dir, overrides = options.data_root, options.checkpoint_dir, options.overrides
    for run in rep.runs:
        out = metrics_path(rep.results_dir, run.key)
        if out.is_file() and not options.overwrite:
            rep.status[run.key] = f"kept {out}"
            continue
        split = _profile_split(run.dataset, run.split)
        if not data_present(data_root, run.dataset, split):
            rep.status[run.key] = f"skipped: no {run.dataset} {split} under {Path(data_root) / run.dataset}"
            continue
        weights = resolve_weights(run, checkpoint_dir)
        cfg = real_config(run, data_root, rep.device, overrides)
        if run.kind == "ablation" and options.train:
            if not data_present(data_root, run.dataset, cfg.data.train_split):
                rep.status[run.key] = f"skipped: no {run.dataset} {cfg.data.train_split} split to train on"
                continue
            log(f"[reproduce] training {run.key} ({run.config})")
            weights = _train(cfg, rep.results_dir / "train" / run.key, options.gpus, log)
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


def preflight(runs: Sequence[Run], options: ReproduceOptions, *, device: str = "cpu") -> None:
    """Check what real mode will read (``options``: ``data_root``, ``checkpoint_dir``, ``results_dir``, ``train``,
    ``overwrite``, ``overrides``), before it runs anything: every data set folder the runs use
    (:func:`boir_core.data.sources.layout.check_layout`) and every weights file it will evaluate
    (:func:`boir_core.engine.evaluation.runner.check_inference_weights`: the row's architecture, backbone width and
    keypoint count, tensor by tensor). Missing data or weights are not problems (those rows are skipped);
    runs whose metrics file is kept are not checked. Raises :class:`PreflightError` listing every problem.
    """
    data_root, checkpoint_dir, train = options.data_root, options.checkpoint_dir, options.train
    results_dir, overwrite, overrides = options.results_dir, options.overwrite, options.overrides
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
        if metrics_path(results_dir, run.key).is_file() and not overwrite:
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

    return json.loads(Path(result["metrics_path"]).read_text()).get("preset") or "not recorded"


# ---- demo mode --------------------------------------------------------------------------------------

def _demo_data(base: Path, num_keypoints: int, num_val: int) -> Path:

    root = base / "data" / ("synthcrowd" if num_keypoints == 17 else "synthcrowd14")
    ensure_synthcrowd(root, SynthCrowdSpec(num_keypoints=num_keypoints, num_train=16, num_val=max(int(num_val), 1)))
    return root


def _demo_models(rep: ReproduceReport, needed: set[tuple[str, int]], roots: dict[int, Path], iters: int,
                 demo_checkpoint: Optional[str], log) -> dict[tuple[str, int], tuple[Config, Path]]:
    """(arch, K) → (config, weights) of the small stand-in models, trained once (cached by folder)."""
    base = _base(rep.results_dir, True) / "models"
    dev = (f"train.device={rep.device}", f"test.device={rep.device}")
    short = ["train.epochs=1", f"train.max_steps_per_epoch={int(iters)}", "train.log_every=1000"]
    out: dict[tuple[str, int], tuple[Config, Path]] = {}
    for arch in ("boir", "cid"):
        if not any(a == arch for a, _ in needed):
            continue
        if arch == "boir" and demo_checkpoint and Path(demo_checkpoint).is_file():

            cfg = checkpoint_config(demo_checkpoint, None, [f"data.root={roots[17]}", *dev])
            out[(arch, 17)] = (cfg, Path(demo_checkpoint))
            rep.notes.append(f"BoIR rows: the trained demo weights {demo_checkpoint} ({cfg.name} config)")
        else:
            ov = [f"data.root={roots[17]}", *dev, *short, f"name={arch}_demo"]
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


def _run_demo(rep: ReproduceReport, numbers: list[int], options: ReproduceOptions, log) -> None:
    demo_images, iters, overwrite = options.demo_images, options.demo_train_iters, options.overwrite

    base = _base(rep.results_dir, True)
    evals = [r for r in rep.runs if r.kind == "evaluate"]
    abl = [r for r in rep.runs if r.kind == "ablation"]
    ks = {r.num_keypoints for r in evals} | ({17} if abl or 5 in numbers else set())
    roots = {k: _demo_data(base, k, demo_images) for k in sorted(ks | {17})}
    needed = {(r.arch, r.num_keypoints) for r in evals}
    if 5 in numbers:
        needed |= {("boir", 17), ("cid", 17)}
    models = _demo_models(rep, needed, roots, iters, options.demo_checkpoint, log)
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



    demo_models = rep.profiles.pop("_demo_models", {})
    latency_cache: dict[str, dict] = {}
    for key, cfg_name in TABLE5_CONFIGS.items():
        real_cfg = load_config(cfg_name, [f"test.device={rep.device}", *overrides])
        with torch.device("meta"):  # counting only: no weights are allocated, W48 takes a fraction of a second
            params = profile(real_cfg, params_only=True)["params"]
        if rep.demo:
            arch = RUNS[key].arch
            cfg, _ = demo_models[f"{arch}17"]
            lat_cfg = cfg.override(f"test.device={rep.device}")
        else:
            lat_cfg = real_cfg
        if lat_cfg.name + lat_cfg.model.arch not in latency_cache:
            log(f"[reproduce] Table 5: timing {lat_cfg.name} ({lat_cfg.model.arch}) on {rep.device}")
            timing = LatencySettings(repeats=repeats, warmup=2 if repeats > 2 else 1)
            latency_cache[lat_cfg.name + lat_cfg.model.arch] = profile(lat_cfg, latency=timing)
        lat = latency_cache[lat_cfg.name + lat_cfg.model.arch]["latency"]
        ev = metrics_path(rep.results_dir, key, rep.demo)
        evaluation = json.loads(ev.read_text()) if ev.is_file() else {}
        metrics = evaluation.get("metrics", {})
        path = table5_path(rep.results_dir, key, rep.demo)
        write_metrics_json(
            path, dataset="synthcrowd" if rep.demo else "coco", split="val", metrics=metrics,
            # the preset: the weights behind the AP column (counts / times: any preset)
            provenance=MetricsProvenance(config=real_cfg, preset=evaluation.get("preset"), key=key, demo=rep.demo),
            measured=Measurements(
                timings={"network_ms": lat["network_ms"], "decode_ms": lat["decode_ms"], "device": lat["device"]},
                params={"inference": params["inference"], "total": params["total"]}))
        rep.profiles[key] = {"config": cfg_name, "params": params, "latency": lat,
                             "timed_config": lat_cfg.name}
        rep.status[f"table5:{key}"] = (f"{params['inference']:,} parameters ({cfg_name}); "
                                       f"{lat['network_ms'] + lat['decode_ms']:.1f} ms ({lat_cfg.name}, "
                                       f"{lat['device']})")


def render_report(rep: ReproduceReport) -> dict[str, str]:
    """Markdown of every table ``rep`` covers: ``{table id: text}``."""
    return {tid: render_table(tid, table_results(tid, rep.results_dir, rep.demo)) for tid in table_ids(rep.table)}


def write_tables(rep: ReproduceReport) -> Path:
    """Render every table ``rep`` covers and write them as one markdown file beside the results,
    ``<results_dir>/tables_<table or 'all'>.md`` (atomically); returns its path."""
    rendered = render_report(rep)
    return atomic_write_text(Path(rep.results_dir) / f"tables_{rep.table or 'all'}.md",
                             "\n\n".join(rendered.values()) + "\n")
