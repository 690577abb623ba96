"""``make demo``: the whole main job on the embedded SynthCrowd data.

:func:`run_demo` tells the kit's story in one command, on any CPU:

1. generates SynthCrowd (once);
2. evaluates the demo weights shipped with the kit (:mod:`boir_core.model.demo_weights`: a BoIR and a CID
   trained for longer than a demo can) on SynthCrowd val: AP over all images, and on the crowded
   (``crowdIndex >= 0.5``) and the sparse images separately; and draws the BoIR's predictions;
3. trains a fresh model of the ``demo`` config within its time budget (``train.time_budget_s``: the engine
   times the first steps on this machine and fixes the step count), to show that training works, scoring
   each of its checkpoints on the first ``CURVE_IMAGES`` val images as it goes (the AP curve) and by its
   held-out keypoint loss on the first ``LOSS_IMAGES`` (which falls where a short run's AP is still 0; the
   shipped BoIR's is printed beside it), and evaluates it: its AP is printed next to the shipped one;
4. executes the notebooks headless (papermill) with the shipped weights;
5. prints what it measured (AP, step time, steps, time per stage) and where every output is, and writes it
   to ``demo_summary.json``.

Without shipped weights (a checkout that has none) steps 2 and 4 use the fresh model instead, and say so.
Step 4 executes the checkout's notebooks: from an installed wheel (no checkout) the demo stops before any
work and says so, and ``notebooks=False`` (``boir demo --no-notebooks``) runs the other steps.
A second run is fast: the finished training run is resumed, not repeated.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...config import load_config
from ...data import get_profile
from ...data.sources.synthetic import SynthCrowdSpec, ensure_synthcrowd
from ...io import atomic_write_json
from ...model.demo_weights import ARCHS, shipped_checkpoint, shipped_config, shipped_manifest
from ...paths import checkout_root
from ..evaluation.crowd_split import crowd_split_metrics
from ..evaluation.keypoint_loss import network_keypoint_loss
from ..evaluation.runner import run_evaluation
from ..inference.predict import Drawings, predict
from ..inference.predictor import Predictor
from ..training import train as training  # train() through its module (tests stand in for it there)
from ..training.budget import length_source

__all__ = ["run_demo", "DemoOptions", "demo_config", "execute_notebook"]

#: What to do without a checkout (an installed wheel): the demo's other steps need only the package.
NO_CHECKOUT_HINT = ("`boir demo --no-notebooks` runs the demo's other steps (data, shipped weights, training, "
                    "drawings) from the installed package, into the working folder.")

#: Seconds of fresh training in ``make demo`` (``train.time_budget_s``), sized so that the whole demo, set-up
#: excluded, stays under 12 minutes on a 2-core AVX2 CPU in fp32 (README, "The ladder of run sizes").
#: Only the demo command applies it: ``configs/demo.yaml`` itself trains for its epochs, so notebooks and
#: configs built on it (``tiny``) are not time-budgeted.
DEMO_TIME_BUDGET_S = 180

#: Val images scored at each checkpoint of the fresh run (the AP curve in the summary; the final AP uses all).
CURVE_IMAGES = 50
#: Val images of the held-out keypoint loss at each checkpoint (and of the shipped BoIR's, for reference): a
#: continuous score that falls while AP, after a few hundred steps, is still 0.
LOSS_IMAGES = 32

def execute_notebook(name: str, out_dir: str | os.PathLike, parameters: dict[str, Any] | None = None,
                     cwd: str | os.PathLike | None = None) -> Path:
    """Build ``notebooks/<name>.ipynb`` from its jupytext ``.py`` and execute it with papermill (kernel in the
    checkout's root, or in ``cwd``: the book starts it in ``notebooks/``, as JupyterLab does). The notebooks
    exist only in a checkout: without one, :class:`~boir_core.paths.NeedsCheckout`."""
    repo = checkout_root(f"executing notebooks/{name}")
    # local: papermill takes seconds to import and only this call (notebook execution) needs the three
    import jupytext
    import nbformat
    import papermill

    src = repo / "notebooks" / f"{name}.py"
    if not src.is_file():
        raise FileNotFoundError(f"no notebook {src}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = out_dir / f"{name}.input.ipynb"
    nbformat.write(jupytext.read(src), built)
    out = out_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(built), str(out), parameters=parameters or {}, kernel_name="python3",
                               cwd=str(cwd if cwd is not None else repo), progress_bar=False)
    built.unlink()
    return out


def _evaluate(cfg, weights: Path, out_dir: Path, key: str, predictor: Predictor | None = None) -> dict[str, Any]:
    """AP of ``weights`` on the config's test split, overall and on crowded / sparse images; ``predictor``: the
    weights already loaded (default: loaded here)."""
    ev = run_evaluation(cfg, weights, out_dir=out_dir, key=key, progress=False, predictor=predictor)
    ann = get_profile(cfg.data.dataset).ann_file(cfg.data.root, cfg.data.test_split)
    split = crowd_split_metrics(ev["results_path"], ann, dataset=cfg.data.dataset, backend=cfg.test.evaluator)
    pick = ("AP", "AP50", "AP75", "AR")
    return {"weights": str(weights), **{k: ev["metrics"].get(k) for k in pick},
            "crowded": {k: split["crowded"].get(k) for k in ("AP", "AP50", "images", "crowd_index")},
            "sparse": {k: split["sparse"].get(k) for k in ("AP", "AP50", "images", "crowd_index")},
            "network_ms": ev["timings"]["network_ms"], "decode_ms": ev["timings"]["decode_ms"],
            "images": ev["images"], "metrics": str(ev["metrics_path"]), "results": str(ev["results_path"])}


def _shipped(data_root: str, weights_dir) -> dict[str, tuple[Any, Path]]:
    """{arch: (config, verified weights path)} of the shipped demo weights; {} when the kit ships none."""
    try:
        listed = shipped_manifest(weights_dir)["weights"]
    except FileNotFoundError:
        return {}
    return {arch: (shipped_config(arch, [f"data.root={data_root}"], weights_dir=weights_dir),
                   shipped_checkpoint(arch, weights_dir=weights_dir))  # ChecksumError if corrupted
            for arch in ARCHS if arch in listed}


def demo_config(config: str = "demo", overrides: list[str] | None = None):
    """The demo's config: ``config`` with the demo's default length (a :data:`DEMO_TIME_BUDGET_S` time budget)
    placed *under* the user's ``overrides``, so any length they set wins (``train.max_steps=N``, another budget,
    or ``train.time_budget_s=0`` to train by the epochs); a config that sets a length of its own keeps it."""
    own = length_source(load_config(config).train) != "epochs"
    default = [] if own else [f"train.time_budget_s={DEMO_TIME_BUDGET_S}"]
    cfg = load_config(config, [*default, *(overrides or [])])
    if default and length_source(cfg.train) == "max_steps":  # the steps win: keep no unused budget in the config
        cfg = cfg.override("train.time_budget_s=0")
    return cfg


@dataclass(frozen=True)
class DemoOptions:
    """What the demo does besides training and evaluating (the defaults: everything ``make demo`` does).

    ``notebooks``: execute the checkout's notebooks (step 4); ``weights_dir``: where the shipped weights and
    their manifest are (None: inside the package); ``draw_images``: val images drawn with the BoIR's poses;
    ``generate_data=False`` uses the SynthCrowd set already at ``data.root`` as it is."""

    notebooks: bool = True
    weights_dir: str | os.PathLike | None = None
    draw_images: int = 8
    generate_data: bool = True


def run_demo(out_dir: str | os.PathLike = "runs/demo", config: str = "demo", overrides: list[str] | None = None,
             options: DemoOptions = DemoOptions()) -> dict[str, Any]:
    """Run the demo (module docstring) into ``out_dir``; returns what ``demo_summary.json`` holds."""
    # before any work: the last step executes the checkout's notebooks
    repo = checkout_root("the demo's last step (executing the notebooks)", NO_CHECKOUT_HINT) \
        if options.notebooks else None
    demo = _Demo(Path(out_dir), demo_config(config, list(overrides or [])), options)
    demo.data()
    demo.evaluate_shipped()
    summary = demo.train_fresh()
    pred = demo.draw()
    executed = demo.execute_notebooks(repo) if repo is not None else []
    summary_out = demo.summary(summary, pred, executed)
    atomic_write_json(demo.out_dir / "demo_summary.json", summary_out, indent=2)
    print(format_summary(summary_out))
    return summary_out


class _Demo:
    """One demo run's stages, in order; each records its seconds in ``stages``."""

    def __init__(self, out_dir: Path, cfg, options: DemoOptions):
        self.out_dir, self.cfg, self.options = out_dir, cfg, options
        self.t0 = time.time()
        self.stages: dict[str, float] = {}
        self.results: dict[str, Any] = {}
        self.shipped: dict[str, tuple[Any, Path]] = {}
        self.run_dir = out_dir / "train"
        self.curve: list[dict[str, Any]] = []
        self.reference_loss: float | None = None  # the shipped BoIR's held-out keypoint loss

    def data(self) -> None:
        t, cfg = time.time(), self.cfg
        print(f"[demo] 1/5 SynthCrowd at {cfg.data.root}")
        if self.options.generate_data:
            k = get_profile(cfg.data.dataset).num_keypoints
            info = ensure_synthcrowd(cfg.data.root, SynthCrowdSpec(num_keypoints=k))
            if info["generated"]:  # why: nothing there, other arguments, or an interrupted generation's leftover
                print(f"[demo]     generated ({info['reason']}) in {info['seconds']:.0f} s")
        self.stages["data"] = time.time() - t

    def evaluate_shipped(self) -> None:
        t, cfg = time.time(), self.cfg
        self.shipped = _shipped(cfg.data.root, self.options.weights_dir)
        if self.shipped:
            print(f"[demo] 2/5 evaluating the shipped demo weights ({', '.join(self.shipped)}; checksums verified) "
                  f"on {cfg.data.dataset} {cfg.data.test_split}: all, crowded and sparse images")
            for arch, (scfg, path) in self.shipped.items():
                folder = self.out_dir / "shipped" / arch
                predictor = Predictor(scfg, path)  # loaded once, for the AP and (BoIR) the loss
                self.results[f"shipped_{arch}"] = _evaluate(scfg, path, folder, f"demo_shipped_{arch}", predictor)
                scfg.dump(folder / "config.yaml")
                if arch == "boir":  # the fresh run's loss curve reads against it
                    self.reference_loss = network_keypoint_loss(predictor.model, scfg, max_images=LOSS_IMAGES)
        else:
            print("[demo] 2/5 this kit ships no demo weights (boir_core/weights/demo_weights.json is missing): "
                  "the drawings and notebooks use the freshly trained model")
        self.stages["evaluate_shipped"] = time.time() - t

    def train_fresh(self):
        """Train (or resume) the fresh run, scoring each checkpoint (the AP curve), then evaluate it."""
        cfg, run_dir = self.cfg, self.run_dir
        budget = cfg.train.time_budget_s
        print(f"[demo] 3/5 training a fresh {cfg.name} model into {run_dir} "
              + (f"within a {budget:.0f} s budget (steps fixed from this CPU's measured step time)"
                 if length_source(cfg.train) == "time_budget" else f"for {cfg.train.max_steps} steps"))
        t = time.time()
        scoring = [0.0]

        def score(step: int, checkpoint: Path) -> None:
            """AP of the run so far on the first CURVE_IMAGES val images and its held-out keypoint loss on the
            first LOSS_IMAGES, at each of its checkpoints."""
            t_score = time.time()
            curve_cfg = cfg.override(f"test.max_images={CURVE_IMAGES}")
            predictor = Predictor(curve_cfg, checkpoint)  # loaded once, for the AP and the loss
            ev = run_evaluation(curve_cfg, checkpoint, out_dir=self.out_dir / "curve" / f"step{step}",
                                key=f"demo_step{step}", progress=False, predictor=predictor)
            loss = network_keypoint_loss(predictor.model, cfg, max_images=LOSS_IMAGES)
            self.curve.append({"step": step, "AP": ev["metrics"].get("AP"), "images": ev["images"],
                               "keypoint_loss": loss, "loss_images": LOSS_IMAGES})
            print(f"[demo]     after step {step}: AP {self.curve[-1]['AP']:.3f} on the first {ev['images']} val "
                  f"images, held-out keypoint loss {loss:.3f}")
            scoring[0] += time.time() - t_score

        summary = training.train(cfg, run_dir, resume="or-restart", progress=True,  # a changed config starts over
                                 hooks=training.TrainHooks(on_checkpoint=score))
        curve_path = run_dir / "ap_curve.json"
        if self.curve:
            atomic_write_json(curve_path, self.curve, indent=2)
        elif curve_path.is_file():  # a finished run resumed: the curve its training measured
            self.curve = json.loads(curve_path.read_text())
        self.stages["train"] = time.time() - t - scoring[0]
        self.stages["ap_curve"] = scoring[0]
        t = time.time()
        self.results["fresh"] = _evaluate(cfg, run_dir / "final.pt", self.out_dir / "eval", "demo_synthcrowd_val")
        self.stages["evaluate_fresh"] = time.time() - t
        return summary

    def draw(self) -> dict[str, Any]:
        t, cfg, n = time.time(), self.cfg, self.options.draw_images
        boir_cfg, boir_weights = self.shipped.get("boir", (cfg, self.run_dir / "final.pt"))
        print(f"[demo] 4/5 drawing {'the shipped' if 'boir' in self.shipped else 'the fresh'} BoIR's predictions on "
              f"{n} validation images")
        val_images = sorted(get_profile(cfg.data.dataset).image_dir(cfg.data.root, cfg.data.test_split)
                            .glob("*.jpg"))[:n]
        pred = predict(boir_cfg, boir_weights, [str(p) for p in val_images], output=self.out_dir / "predictions.json",
                       draw=Drawings(self.out_dir / "predictions"))
        self.stages["draw"] = time.time() - t
        return pred

    def execute_notebooks(self, repo: Path) -> list[Path]:
        t, executed = time.time(), []
        print(f"[demo] 5/5 executing the notebooks (papermill) with the {'shipped' if self.shipped else 'fresh'} "
              "weights")
        nb_params = _notebook_parameters(self.shipped, self.run_dir, self.out_dir)
        for src in sorted((repo / "notebooks").glob("[0-9][0-9]_*.py")):
            params = {name: value for name, value in nb_params.get(src.stem[:2], {}).items() if _takes(src, name)}
            executed.append(execute_notebook(src.stem, self.out_dir / "notebooks", params))
        self.stages["notebooks"] = time.time() - t
        return executed

    def summary(self, summary, pred: dict[str, Any], executed: list[Path]) -> dict[str, Any]:
        """What ``demo_summary.json`` holds (and :func:`format_summary` prints)."""
        cfg, run_dir, out_dir, shipped = self.cfg, self.run_dir, self.out_dir, self.shipped
        self.stages.setdefault("notebooks", 0.0)
        plan = summary.plan or {}
        return {
            "results": self.results,
            "fresh_training": {"steps": plan.get("total_steps"), "steps_this_run": summary.iterations,
                               "ap_curve": self.curve, "shipped_boir_keypoint_loss": self.reference_loss,
                               "batch_size": cfg.train.batch_size, "time_budget_s": cfg.train.time_budget_s or None,
                               "step_seconds": plan.get("step_seconds"), "device": plan.get("device"),
                               "reproduce_with": plan.get("reproduce_with"), "seconds": round(self.stages["train"], 1),
                               "run_dir": str(run_dir)},
            "stages_seconds": {k: round(v, 1) for k, v in self.stages.items()},
            "total_seconds": round(time.time() - self.t0, 1),
            "outputs": {
                "fresh weights": str(run_dir / "final.pt"), "training log": str(run_dir / "metrics.jsonl"),
                "training schedule": str(run_dir / "schedule.json"),
                "fresh metrics": self.results["fresh"]["metrics"],
                **{f"shipped {a} metrics": self.results[f"shipped_{a}"]["metrics"] for a in shipped},
                "drawn predictions": str(out_dir / "predictions"),
                **({"executed notebooks": str(out_dir / "notebooks")} if executed else {}),
                "summary": str(out_dir / "demo_summary.json")},
            "notebooks": [str(p) for p in executed],
            "drawn": {"images": pred["num_images"], "poses": pred["num_poses"]},
        }


def _notebook_parameters(shipped: dict, run_dir: Path, out_dir: Path) -> dict[str, dict[str, str]]:
    fresh = str((run_dir / "final.pt").resolve())
    boir = str(shipped["boir"][1].resolve()) if "boir" in shipped else fresh
    params = {"04": {"checkpoint": str(run_dir.resolve())}, "05": {"checkpoint": boir},
              "06": {"demo_checkpoint": boir}, "07": {"boir_checkpoint": boir}}
    if "boir" in shipped:
        params["07"]["boir_config"] = str((out_dir / "shipped" / "boir" / "config.yaml").resolve())
    if "cid" in shipped:
        params["07"]["cid_checkpoint"] = str(shipped["cid"][1].resolve())
        params["07"]["cid_config"] = str((out_dir / "shipped" / "cid" / "config.yaml").resolve())
    return params


def format_summary(s: dict[str, Any]) -> str:
    """The demo's closing report: AP table, training figures, time per stage, where the outputs are."""
    def f(v):
        return "  -  " if v is None else f"{v:.3f}"

    lines = [f"\n[demo] done in {s['total_seconds']:.0f} s ({s['total_seconds'] / 60:.1f} min)",
             "  SynthCrowd val            AP     AP50   AR     crowded AP  sparse AP"]
    names = {"shipped_boir": "shipped BoIR", "shipped_cid": "shipped CID", "fresh": "fresh (this run)"}
    for key, r in s["results"].items():
        lines.append(f"  {names.get(key, key):<24} {f(r['AP'])}  {f(r['AP50'])}  {f(r['AR'])}  "
                     f"{f(r['crowded']['AP'])}       {f(r['sparse']['AP'])}")
    r = next(iter(s["results"].values()))
    lines.append(f"  (crowded: {r['crowded']['images']} images with crowdIndex >= 0.5; sparse: "
                 f"{r['sparse']['images']} images)")
    ft = s["fresh_training"]
    step = ft.get("step_seconds", ft.get("measured_step_s"))  # the key of summaries written before
    lines.append(f"  fresh training: {ft['steps']} steps of {ft['batch_size']} images in {ft['seconds']:.0f} s"
                 + (f"; budget {ft['time_budget_s']:.0f} s, measured {step:.3f} s per step on {ft['device']}; "
                    f"rerun exactly with {ft['reproduce_with']}" if step else ""))
    if ft.get("ap_curve"):
        lines.append("  fresh AP as it trained (first {} val images): ".format(ft["ap_curve"][0]["images"])
                     + ", ".join(f"{p['AP']:.3f} after step {p['step']}" for p in ft["ap_curve"]))
        losses = [p for p in ft["ap_curve"] if p.get("keypoint_loss") is not None]  # older summaries have none
        if losses:
            ref = ft.get("shipped_boir_keypoint_loss")
            lines.append(f"  fresh held-out keypoint loss (first {losses[0]['loss_images']} val images, lower is better"
                         + (f"; the shipped BoIR's: {ref:.3f}" if ref is not None else "") + "): "
                         + ", ".join(f"{p['keypoint_loss']:.3f} after step {p['step']}" for p in losses))
    lines.append("  time per stage: " + ", ".join(f"{k} {v:.0f} s" for k, v in s["stages_seconds"].items()))
    for label, path in s["outputs"].items():
        lines.append(f"  {label:<21} {path}")
    lines.append(f"  ({s['drawn']['poses']} poses drawn on {s['drawn']['images']} images)")
    return "\n".join(lines)


def _takes(src: Path, name: str) -> bool:
    """Does the notebook's parameters cell define ``name``?"""
    import jupytext  # local: only notebook runs need it (see execute_notebook)

    nb = jupytext.read(src)
    for c in nb.cells:
        if "parameters" in c.get("metadata", {}).get("tags", []):
            return any(line.split("=")[0].strip() == name for line in c.source.splitlines() if "=" in line)
    return False
