"""The runs behind the paper's tables, where their weights and results are, and the configs they use.

Every reproducible row of :mod:`boir_core.paper.values` carries a run ``key``; :data:`RUNS` says, per key,
which config evaluates it, which weights file it needs and on which data; :func:`plan` lists the runs of one
table (or all); :func:`table_results` reads back the metrics files a table is rendered from. Running them is
:func:`boir_core.paper.reproduce.reproduce`.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

import yaml

from ..config import Config, configs_dir, load_config
from ..data.profiles import REAL_DATASETS, get_profile
from ..engine.inference.weights import run_weights
from .results import load_results
from .values import ABLATION_KEYS, RUN_SPECS, TABLES, all_keys, rows_for_key, tables_for

__all__ = [
    "Run", "RUNS", "REAL_DATASETS", "TABLE5_CONFIGS", "RESULTS_DIR", "table_numbers", "table_ids", "plan",
    "ablation_subset", "weight_candidates", "resolve_weights", "data_present", "detect_demo", "metrics_path",
    "table5_path", "real_config", "config_overrides_between", "ABLATION_SWITCHES", "demo_ablation_config",
    "identical_configs", "table_results",
]

#: Where ``reproduce`` (the CLI, notebook 06, ``make reproduce``) writes its results by default.
RESULTS_DIR = "runs/reproduce/results"

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
    out = {}
    for key in all_keys():
        cfg, w, arch, ds, split, ov = RUN_SPECS[key]  # KeyError here: a new table key without a run
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
    return [t.id for n in table_numbers(table) for t in tables_for(n)]


def ablation_subset(table: Union[int, str], rows: Union[int, str, Sequence[str]]) -> list[str]:
    """The ablation keys a demo trains: ``"all"``, a list of keys, or a count N — the first N rows of the
    requested ablation tables taken round-robin over their parts (4L, 4R, 7L, 7R), so that N = 2 with
    ``table=0`` trains one row of Table 4 and one of Table 7."""
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
    """``run``'s config with its data under ``<data_root>/<dataset>``, trained and evaluated on ``device``
    (``train.device``, ``test.device``)."""
    run = RUNS[run] if isinstance(run, str) else run
    return load_config(run.config_path, [*run.overrides, f"data.root={Path(data_root) / run.dataset}",
                                         f"train.device={device}", f"test.device={device}", *extra])


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
    flat = _flatten(load_config(RUNS[key].config_path).to_dict())
    switches = [f"{k}={yaml.safe_dump(flat[k], default_flow_style=True).strip().removesuffix('...').strip()}"
                for k in ABLATION_SWITCHES]
    return load_config(base, [*switches, f"name={key}", f"data.root={data_root}", f"train.device={device}",
                              f"test.device={device}", "train.epochs=1", f"train.max_steps_per_epoch={int(iters)}",
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


def table_results(table_id: str, results_dir: Union[str, os.PathLike], demo: bool = False) -> dict:
    """``{key: Result}`` for one table id (``"1"``, ``"4L"``, ``"5"``, ...) from its files in
    ``results_dir`` (missing files: no result, the row shows its command)."""
    t = TABLES[str(table_id)]
    files = []
    for row in t.rows:
        for key in row.run_keys():
            p = table5_path(results_dir, key, demo) if t.number == 5 else metrics_path(results_dir, key, demo)
            if p.is_file():
                files.append(p)
    return load_results(files) if files else {}
