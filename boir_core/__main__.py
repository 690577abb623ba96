"""The BoIR Kit command line: ``boir <command> [options] [key=value ...]`` (the console script a ``pip install``
adds), or ``python -m boir_core <command> ...``.

Commands
    train      train a config into a run folder (auto-resumes); works under ``torchrun`` (DDP);
               ``--dry-run``: the pre-flight of a long run (one batch, a few steps, nothing written)
    evaluate   evaluate a checkpoint on the config's test split; writes a metrics JSON
    predict    predict poses on images, a folder or a video; writes COCO-format JSON (+ drawings)
    profile    parameter counts (Table 5) and network / decoding latency
    demo       the whole main job on the embedded SynthCrowd data (what ``make demo`` runs)
    reproduce  run what one of the paper's tables needs (evaluate, train ablations, measure) and render it
    export     write the inference network as ONNX graphs (backbone + center head, instance head)
    convert-checkpoint  rewrite a trusted older weights / training-state file as data (``--trust FILE [-o OUT]``)
    book       execute the notebooks and build the book: them and docs/ as a static HTML site (``make book``)
    doctor     what this machine offers: versions, CPU instruction sets (and train.amp=fast), GPUs, where the
               ImageNet weights and data are looked for, whether the hub is reachable (``--json``)
    prepare-data  download / arrange / verify COCO, CrowdPose and OCHuman under ``--root`` (also
               ``data_scripts/prepare_data.py``); exit status 1 when a data set is incomplete
    ship-demo  export a finished run as the kit's shipped demo weights, evaluate and record them

Every command takes ``--config`` (a YAML file, or the name of one of the kit's configs: ``coco_w32``, ``demo``,
``t4_full``; they ship inside the package) and ``key=value`` overrides, e.g. ``boir train --config demo
train.epochs=2``. ``--checkpoint shipped:boir`` (or ``shipped:cid``) names the demo weights shipped inside the
package (always them, checksum verified; a file of that name is ``./shipped:boir``); with it and no ``--config``,
the config they were trained with is used. Weights files are read as data only (``weights_only=True``): a file
that would need a full unpickling, which can run code, is refused; ``convert-checkpoint --trust`` rewrites a
trusted one.

Relative paths (outputs ``runs/...``, data ``data/...``) are read from the working folder; a config on the
embedded SynthCrowd data generates it there when it is missing (train, evaluate), and says so. ``demo``
executes the notebooks, which need a checkout of the kit (``git clone``), not only the package.

Errors: every failure is one ``error: ...`` line on stderr that names the file, key or value and what to do.
Exit status 2: an error in what was asked or given (usage, config, data, a missing or unwritable path, a
checkpoint that cannot be read); 1: an unexpected internal error; 130: interrupted (Ctrl-C). ``--debug`` (before
or after the command) or ``BOIR_DEBUG=1`` prints the traceback too.
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import sys
import traceback
from pathlib import Path

from .io import check_writable_folder

# Each subcommand imports its engine module inside its function: those imports pull in torch, timm, cv2
# and pycocotools (seconds), which `--help` and the other subcommands do not need.


def _config(args):
    from .config import load_config
    from .model.demo_weights import shipped_arch, shipped_config

    ckpt = getattr(args, "checkpoint", None)
    # shipped:NAME always means the packaged weights: a local file of that name is never consulted
    arch = shipped_arch(ckpt) if args.config is None and ckpt else None
    if arch is not None:  # the shipped weights' own config (recorded in their manifest)
        print(f"[{args.command}] config: the one {ckpt} was trained with (its manifest); --config to change it",
              file=sys.stderr)
        return shipped_config(arch, args.overrides)
    return load_config(args.config, args.overrides)


def _data(cfg) -> None:
    """The embedded SynthCrowd, generated at ``data.root`` (from the working folder) when it is missing."""
    from .engine.evaluation.runner import prepare_demo_data

    prepare_demo_data(cfg, say=lambda m: print(m, file=sys.stderr))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="YAML file or the name of one of the kit's configs (coco_w32, demo, t4_full, ...; default: "
                        "built-in defaults)")
    p.add_argument("overrides", nargs="*", default=[], help="key=value overrides, e.g. train.epochs=5")


def cmd_train(args) -> int:
    from .engine.training.train import train

    cfg = _config(args)
    if args.dry_run:
        from .engine.jobs.dryrun import dry_run, format_dry_run

        report = dry_run(cfg, steps=args.dry_run_steps)
        if int(os.environ.get("RANK", "0")) == 0:
            print(format_dry_run(report))
        return 0
    run_dir = Path(args.run_dir or Path(cfg.output_dir) / cfg.name)
    _data(cfg)
    summary = train(cfg, run_dir, resume=not args.no_resume, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:
        step = f", {summary.step_seconds:.3f} s per step measured" if summary.step_seconds else ""
        print(f"[train] done: {summary.iterations} iterations in {summary.seconds:.0f} s (run of "
              f"{summary.total_steps} steps{step}; {run_dir / 'schedule.json'}); weights: {summary.final_weights}")
    return 0


def cmd_evaluate(args) -> int:
    from .engine.evaluation.runner import run_evaluation

    cfg = _config(args)
    if args.out:  # before the work: a folder that cannot be written is found now, not after the evaluation
        check_writable_folder(args.out)
    _data(cfg)
    out = run_evaluation(cfg, args.checkpoint, out_dir=args.out, key=args.key, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process returns the same result
        print(json.dumps(out["metrics"], indent=2))
        print(f"[evaluate] {out['images']} images on {out['processes']} process(es); metrics written to "
              f"{out['metrics_path']}")
    return 0


def cmd_predict(args) -> int:
    from .engine.inference.predict import DRAW_MIN_SCORE, Drawings, predict

    cfg = _config(args)
    min_score = DRAW_MIN_SCORE if args.draw_min_score is None else args.draw_min_score
    draw = Drawings(args.draw, min_score) if args.draw is not None else None
    report = predict(cfg, args.checkpoint, args.inputs, output=args.output, draw=draw,
                     on_failure=lambda name, why: print(f"error: {name}: {why}", file=sys.stderr))
    print(f"[predict] {report['num_poses']} poses on {report['num_images']} images -> {args.output}"
          + (f"; drawings in {args.draw}" if args.draw else ""))
    if report["failed"]:
        print(f"error: {len(report['failed'])} input(s) failed (listed above); the results of the "
              f"{report['num_images']} other images are in {args.output}", file=sys.stderr)
        return 2
    return 0


PREDICT_HELP = """predict poses on images, folders of images or video files; writes COCO-format JSON (+ drawings)

Before any work: every input exists (a folder holds images), --output is a file name (not a folder, not an
image, not one of the inputs), --draw does not hold an input, and both can be written into.
Each image is then predicted on its own. An input that cannot be used gets one `error: FILE: why` line and
the others keep their results: an unreadable file, a video that does not open, or an image beyond the input
limits. Input limits: at most 4:1 (long side / short side) and 120 million pixels. The short side is resized
to data.input_size S and the long side padded to a multiple of 64, so the network canvas is at most S x 4S
(512 x 2048 at S = 512); a 1x2000 strip would need a 512 x 1,024,000 canvas.
Exit status: 0 every input predicted; 2 an input failed (the others' results are written) or a usage, path,
config or checkpoint error (no input usable: nothing is written); 1 an internal error; 130 interrupted.
"""


def cmd_export(args) -> int:
    from .engine.inference.export import export_checkpoint

    if args.calibration is not None and not args.int8:
        from .config import ConfigError

        raise ConfigError("export --calibration names the images that --int8 calibrates on: add --int8")
    cfg = _config(args)
    made = args.output is not None and not Path(args.output).exists()
    if args.output:
        check_writable_folder(args.output)
    try:
        paths = export_checkpoint(cfg, args.checkpoint, fmt=args.format, output=args.output, int8=args.int8,
                                  calibration=args.calibration)
    except BaseException:
        if made:  # the folder this call created, still empty: leave nothing behind
            with contextlib.suppress(OSError):
                Path(args.output).rmdir()
        raise
    print(f"[export] {args.format}: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_convert_checkpoint(args) -> int:
    """Rewrite a trusted file the kit refuses (it holds Python objects) as data (``weights_only=True``)."""
    from .engine.training.convert import convert_checkpoint

    report = convert_checkpoint(args.file, args.output, trust=args.trust)  # without --trust: refused, nothing read
    print(f"[convert-checkpoint] {report.summary()}")
    return 0


def cmd_profile(args) -> int:
    from .engine.inference.profile import LatencySettings, profile

    cfg = _config(args)
    res = profile(cfg, params_only=args.params_only,
                  latency=LatencySettings(input_size=args.input_size, repeats=args.repeats, flip_test=not args.no_flip))
    if args.json:
        print(json.dumps(res))
    else:
        from .engine.inference.profile import format_profile

        print(format_profile(res))
    return 0


def cmd_demo(args) -> int:
    from .engine.jobs.demo import DemoOptions, run_demo

    run_demo(out_dir=args.out, config=args.config or "demo", overrides=args.overrides,
             options=DemoOptions(notebooks=not args.no_notebooks))
    return 0


#: Where ``book`` executes the notebooks (from the working folder) when ``--executed`` names no folder.
BOOK_EXECUTED = "runs/book/executed"


def cmd_book(args) -> int:
    """Execute the notebooks (or take ``--executed``) and build the book into ``--out``."""
    from .book import build_book, check_book_folder, execute_notebooks

    out = Path(args.out)
    check_book_folder(out)  # before minutes of notebook runs: an --out that cannot take the book is named now
    if args.executed:
        executed = Path(args.executed)
    else:
        executed = execute_notebooks(BOOK_EXECUTED, say=lambda m: print(m, file=sys.stderr))
    index = build_book(executed, out)
    print(f"[book] {index} (open it in a browser: {index.resolve().as_uri()})")
    return 0


def cmd_doctor(args) -> int:
    """Versions, CPU, GPUs, weights, data and hub, on one screen or as JSON (:mod:`boir_core.engine.jobs.doctor`)."""
    from .engine.jobs.doctor import doctor, format_doctor

    report = doctor()
    print(json.dumps(report, indent=2) if args.json else format_doctor(report))
    return 0


def cmd_prepare_data(args) -> int:
    """:func:`boir_core.data.sources.prepare.run_command`: list the archives, verify, or prepare a data set."""
    from .data.sources.prepare import DATASETS, run_command

    named = [args.what] if args.what not in ("list", "verify") else []
    unknown = [d for d in [*named, *(args.datasets or ())] if d not in DATASETS]
    if unknown:
        raise SystemExit(f"prepare-data: unknown data set(s) {', '.join(unknown)}; known: {', '.join(DATASETS)} "
                         "(or verify / list)")
    if named and args.datasets:
        raise SystemExit(f"prepare-data {args.what}: one data set at a time (got also {', '.join(args.datasets)})")
    options = {"subset": args.subset}
    if named:
        options.update(download_missing=args.download, check=not args.no_check,
                       link="copy" if args.copy else "symlink", progress=not args.quiet,
                       download_dir=args.download_dir)
    return run_command(args.what, args.datasets, root=args.root, source=args.source, options=options)


def cmd_ship_demo(args) -> int:
    """:func:`boir_core.engine.jobs.ship_demo.ship`: export, evaluate and record the shipped demo weights."""
    from .engine.jobs.ship_demo import ship

    curve = json.loads(Path(args.curve).read_text()) if args.curve else []
    entry = ship(args.arch, args.config, args.run_dir, command=args.command, curve=curve,
                 weights_dir=args.weights_dir)
    print(json.dumps({k: entry[k] for k in ("file", "sha256", "bytes", "metrics")}, indent=2))
    return 0


def cmd_reproduce(args) -> int:
    """The library's :func:`boir_core.paper.reproduce.reproduce`, then the tables rendered into
    ``<results_dir>/tables_<n>.md`` and printed (no notebook: notebook 06 is a view over the same calls)."""
    kwargs, overrides = _reproduce_arguments(args.overrides)  # a mistake is named before torch is imported
    from .paper import reproduce as rp

    if args.results_dir:
        kwargs["results_dir"] = args.results_dir
    report = rp.reproduce(args.table, rp.ReproduceOptions(overrides=overrides, **kwargs))
    print(report.summary())
    path = rp.write_tables(report)
    print(path.read_text())
    print(f"[reproduce] Table {args.table or 'all'}: {path}")
    return 0


#: ``reproduce``'s own arguments that ``key=value`` may set (the fields of ``ReproduceOptions``; a key with a dot
#: is a config override instead).
REPRODUCE_ARGUMENTS = {"data_root": str, "checkpoint_dir": str, "train": "bool", "gpus": int, "demo": "demo",
                       "demo_ablation_rows": "rows", "demo_images": int, "demo_train_iters": int,
                       "demo_checkpoint": str, "overwrite": "bool", "latency_repeats": int}


def _reproduce_arguments(items: list[str]) -> tuple[dict, list[str]]:
    """Split ``key=value`` items into reproduce()'s options (``ReproduceOptions`` fields) and config overrides
    (``section.key=value``)."""
    import yaml

    kwargs: dict = {}
    overrides: list[str] = []
    for item in items:
        if "=" not in item:
            raise SystemExit(f"reproduce: {item!r} is not key=value")
        key, value = item.split("=", 1)
        if "." in key:
            overrides.append(item)
            continue
        kind = REPRODUCE_ARGUMENTS.get(key)
        if kind is None:
            raise SystemExit(f"reproduce: unknown argument {key!r}; one of {', '.join(REPRODUCE_ARGUMENTS)}, "
                             f"or a config key with a dot (test.max_images=100)")
        parsed = yaml.safe_load(value)
        if kind == "bool" and not isinstance(parsed, bool):
            raise SystemExit(f"reproduce: {key}={value!r} is not true / false")
        if kind == "demo":
            parsed = parsed if isinstance(parsed, bool) else str(value)
        elif kind == "rows":
            parsed = parsed if isinstance(parsed, (int, list)) else str(value)
        elif kind in (int, str):
            parsed = kind(value)
        kwargs[key] = parsed
    return kwargs, overrides


class _Parser(argparse.ArgumentParser):
    """argparse with the kit's one way to fail: a usage error is one ``error:`` line naming the command and what
    to do, exit status 2, instead of argparse's usage block (the command's ``--help`` shows that)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message}; see {self.prog} --help\n")


def _parser_train(sub) -> None:
    p = sub.add_parser("train", help="train a config (DDP under torchrun)")
    _add_common(p)
    p.add_argument("--run-dir", default=None, help="run folder (default: <output_dir>/<name>)")
    p.add_argument("--no-resume", action="store_true", help="ignore an existing checkpoint in the run folder")
    p.add_argument("--dry-run", action="store_true",
                   help="pre-flight: build data, model, optimizer and schedule, run a few steps on one batch, print "
                        "the resolved config, ImageNet source, total steps, images per step, parameters, step "
                        "time and peak memory; writes nothing")
    p.add_argument("--dry-run-steps", type=int, default=2,
                   help="steps of the dry run (the first includes warm-up; default 2)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_train)


def _parser_evaluate(sub) -> None:
    p = sub.add_parser("evaluate", help="evaluate a checkpoint, write a metrics JSON")
    _add_common(p)
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint, a run folder, a released .pth, or shipped:boir / shipped:cid")
    p.add_argument("--out", default=None, help="output folder (default: eval/ next to the checkpoint; for the "
                                              "shipped weights <output_dir>/<name>/eval in the working folder)")
    p.add_argument("--key", default=None, help="table row key recorded in the metrics JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def _parser_predict(sub) -> None:
    p = sub.add_parser("predict", help="predict poses on images / a folder / a video",
                       description=PREDICT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", "-c", default=None,
                   help="YAML file or config name (default: the shipped weights' own config for shipped:boir / "
                        "shipped:cid, else the built-in defaults)")
    p.add_argument("--checkpoint", required=True, help="weights file, run folder, released .pth, or shipped:boir / "
                                                       "shipped:cid (the demo weights inside the package)")
    p.add_argument("--output", "-o", required=True,
                   help="COCO-format results JSON (a file, not a folder, never one of the inputs; its folder is "
                        "created)")
    p.add_argument("--draw", default=None, help="folder for images with drawn skeletons (created; not a folder "
                                                "that holds an input)")
    p.add_argument("--draw-min-score", type=float, default=None,
                   help="draw only people scored at least this (default 0.05; the JSON keeps every pose)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("inputs", nargs="+", help="image files, folders or video files; key=value overrides too "
                                              "(images up to 4:1 and 120 million pixels: see above)")
    p.set_defaults(func=cmd_predict)


def _parser_export(sub) -> None:
    p = sub.add_parser("export", help="export the inference network (ONNX)")
    _add_common(p)
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint, a run folder, a released .pth, or shipped:boir / shipped:cid")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--output", "-o", default=None,
                   help="output folder for dense.onnx, instance.onnx, meta.json and deploy.json: a deployment "
                        "folder that python -m boir_core.deploy runs without torch (default <output_dir>/<name>/onnx)")
    p.add_argument("--int8", action="store_true",
                   help="quantise the dense graph to INT8 (ONNX Runtime, static; the fastest on a CPU, not exact: "
                        "docs/inference.md#int8-post-training-quantisation), calibrated on test.calibration_images "
                        "images of the train split or of --calibration")
    p.add_argument("--calibration", default=None, metavar="DIR",
                   help="with --int8: a folder of images to calibrate on instead of the config's train split")
    p.set_defaults(func=cmd_export)


def _parser_convert_checkpoint(sub) -> None:
    p = sub.add_parser("convert-checkpoint",
                       help="rewrite a TRUSTED older weights / training-state file as data the kit reads")
    p.add_argument("file", help="the file the kit refused (it holds Python objects: a full unpickling runs code)")
    p.add_argument("--trust", action="store_true",
                   help="you trust where FILE came from: it is unpickled fully (which runs any code it carries) "
                        "once, here, and written back as tensors and plain values; without it nothing is read")
    p.add_argument("--output", "-o", default=None,
                   help="the converted file (default: <stem>.safe.pt beside FILE; FILE itself: replaced)")
    p.set_defaults(func=cmd_convert_checkpoint)


def _parser_profile(sub) -> None:
    p = sub.add_parser("profile", help="parameter counts and latency (Table 5)")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--params-only", action="store_true")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-flip", action="store_true")
    p.set_defaults(func=cmd_profile)


def _parser_demo(sub) -> None:
    p = sub.add_parser("demo", help="the main job on SynthCrowd (executing the notebooks needs a checkout)")
    _add_common(p)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--no-notebooks", action="store_true",
                   help="skip executing the notebooks (what an installed package without a checkout can run)")
    p.set_defaults(func=cmd_demo)


def _parser_book(sub) -> None:
    p = sub.add_parser("book", help="execute the notebooks and build the book (static HTML: them and docs/)",
                       description="Execute every notebook with its defaults (papermill, kernel in notebooks/) into "
                                   f"{BOOK_EXECUTED}/, then build the book: the executed notebooks and docs/*.md as "
                                   "one static HTML site that reads offline (table of contents, figures, equations). "
                                   "Needs a checkout of the kit and the notebooks extra.")
    p.add_argument("--executed", default=None,
                   help="a folder of executed notebooks (NN_topic.ipynb) to build from, instead of executing them")
    p.add_argument("--out", default="runs/book/html",
                   help="the book's folder (default runs/book/html; replaced only if it holds a book or nothing)")
    p.set_defaults(func=cmd_book)


def _parser_doctor(sub) -> None:
    p = sub.add_parser("doctor", help="what this machine offers the kit: versions, CPU, GPUs, weights, data, hub",
                       description="Versions (Python, PyTorch, CUDA / cuDNN, onnxruntime and its execution "
                                   "providers, OpenVINO), the CPU's instruction sets (AVX2, AVX-512, AMX, bf16) and "
                                   "what they mean for train.amp=fast, the GPUs with their memory, where the "
                                   "ImageNet weights (the Hugging Face cache) and the data sets (each paper "
                                   "config's data.root, from the working folder) are looked for, and whether the "
                                   "Hugging Face hub answers (never asked when HF_HUB_OFFLINE is set; otherwise "
                                   "one request with a 3 s timeout).")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_doctor)


def _parser_reproduce(sub) -> None:
    p = sub.add_parser("reproduce", help="run what one of the paper's tables needs and render it (paper / ours)")
    p.add_argument("--table", type=int, required=True, choices=range(0, 8), help="1-7, or 0 for all")
    p.add_argument("--results-dir", default=None, help="where the metrics files and tables_<n>.md go "
                                                          "(default: runs/reproduce/results)")
    p.add_argument("overrides", nargs="*", default=[],
                   help="reproduce's arguments as key=value (data_root=data checkpoint_dir=checkpoints train=true "
                        "gpus=4 demo=auto overwrite=true ...) and config overrides for every run "
                        "(model.pretrained=FILE test.max_images=100)")
    p.set_defaults(func=cmd_reproduce)


#: ``prepare-data --subset``
SUBSET_HELP = ("the files are a subset of the release (a trial on a few images): every listed image must be on "
               "disk, but the image and annotation counts are not compared with the full release's")


def _parser_prepare_data(sub) -> None:
    p = sub.add_parser("prepare-data", help="download / arrange / verify COCO, CrowdPose and OCHuman",
                       description="Prepare COCO 2017 keypoints, CrowdPose and OCHuman under ROOT/<dataset> in the "
                                   "layout the kit's profiles read; exit status 0 = complete, 1 = incomplete (the "
                                   "report says what).")
    p.add_argument("what", metavar="{coco,crowdpose,ochuman,verify,list}",
                   help="a data set to prepare; verify: re-check prepared data sets; list: the archive table "
                        "(names, URLs, sizes, checksums)")
    p.add_argument("datasets", nargs="*", default=None, metavar="DATASET",
                   help="verify / list: which data sets (default: all three)")
    p.add_argument("--root", default="data", help="data root (default: data)")
    p.add_argument("--from", dest="source", default=None,
                   help="folder with the downloaded archives or their extracted files")
    p.add_argument("--download", action="store_true",
                   help="download missing archives that have a URL (COCO only; resumes .part files)")
    p.add_argument("--download-dir", default=None, help="where downloads go (default: --from or ROOT/<ds>/downloads)")
    p.add_argument("--no-check", action="store_true", help="skip size / checksum checks")
    p.add_argument("--copy", action="store_true", help="copy supplied image folders instead of symlinking")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--subset", action="store_true", help=SUBSET_HELP)
    p.set_defaults(func=cmd_prepare_data)


def _parser_ship_demo(sub) -> None:
    p = sub.add_parser("ship-demo", help="export a finished run as the kit's shipped demo weights (and evaluate)")
    p.add_argument("--arch", choices=("boir", "cid"), required=True)
    p.add_argument("--config", required=True, help="the config file the run was trained with")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--command", default=None, help="the exact training command (default: the kit's train "
                                                     "command for --config and --run-dir, one thread)")
    p.add_argument("--curve", default=None, help="JSON file: [{steps, AP, ...}] of intermediate checkpoints")
    p.add_argument("--weights-dir", default=None)
    p.set_defaults(func=cmd_ship_demo)


#: the sub-commands, in --help's order: each adds its parser
_SUBCOMMANDS = (_parser_train, _parser_evaluate, _parser_predict, _parser_export, _parser_convert_checkpoint,
                _parser_profile, _parser_demo, _parser_book, _parser_doctor, _parser_reproduce, _parser_prepare_data,
                _parser_ship_demo)


def build_parser() -> argparse.ArgumentParser:
    prog = "boir" if Path(sys.argv[0]).name == "boir" else "python -m boir_core"
    ap = _Parser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    sub = ap.add_subparsers(dest="command", required=True)
    for add in _SUBCOMMANDS:
        add(sub)
    for p in sub.choices.values():  # --debug before or after the command (SUPPRESS: not reset by the command)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return ap


DEBUG_HELP = "show the traceback of an error (also: environment variable BOIR_DEBUG=1)"


def main(argv: list[str] | None = None) -> int:
    """Run one command; every failure is one ``error: ...`` line on stderr ("Errors" in the module docstring)."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False) or os.environ.get(DEBUG_ENV, "").strip().lower() not in FALSE_WORDS
    if args.command == "predict":  # split key=value overrides from input paths
        args.overrides = [a for a in args.inputs if "=" in a and not Path(a).exists()]
        args.inputs = [a for a in args.inputs if a not in args.overrides]
    try:
        return args.func(args)
    except KeyboardInterrupt:  # whatever the command printed on its way out (train: how to resume) stays
        if debug:
            traceback.print_exc()
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as e:  # a command's own `raise SystemExit("message")`: a usage error like the others
        if not isinstance(e.code, str):
            raise
        print(f"error: {e.code}", file=sys.stderr)
        return 2
    except Exception as e:
        if debug:
            traceback.print_exc()
        status, message = describe_error(e)
        if status == 1 and not debug:
            message += f" (run with --debug, or {DEBUG_ENV}=1, for the traceback)"
        print(f"error: {message}", file=sys.stderr)
        return status


#: The environment variable that shows tracebacks, like ``--debug`` (unset, empty, 0, false or no: off).
DEBUG_ENV = "BOIR_DEBUG"
FALSE_WORDS = ("", "0", "false", "no", "off")

#: Errors in what the user asked for (printed as one line, exit status 2), by module: the classes of the modules
#: that import torch are looked up only when loaded (an instance of one means its module is), so a command that
#: needs no network (``--help``, ``demo`` without a checkout) answers without importing torch. Besides these:
#: every ``ValueError`` subclass the kit defines, a ``ValueError`` raised by the data code, every ``OSError``
#: (missing files, permissions, a full disk) and "cannot read checkpoint" (:func:`describe_error`).
USER_ERRORS = (("boir_core.config", "ConfigError"), ("boir_core.paths", "NeedsCheckout"),
               ("boir_core.engine.training.resume_check", "ResumeMismatchError"),
               ("boir_core.model.checkpoints", "CheckpointError"),
               ("boir_core.engine.inference.backends", "BackendUnavailable"),
               ("boir_core.data.sources.prepare", "PrepareError"),
               ("boir_core.engine.training.train", "NonFiniteLossError"),
               ("boir_core.engine.training.runlock", "RunLockedError"))

#: What to do about an OSError, by errno.
_OS_HINTS = {errno.EACCES: "check its permissions or choose another path",
             errno.EPERM: "check its permissions or choose another path",
             errno.EROFS: "a read-only file system: choose another path",
             errno.ENOSPC: "the disk is full: free some space or choose another folder",
             errno.EDQUOT: "the disk quota is used up: free some space or choose another folder",
             errno.ENOENT: "check the path",
             errno.EISDIR: "it is a folder: name a file",
             errno.ENOTDIR: "a part of the path is a file, not a folder"}


def _user_error(e: BaseException) -> bool:
    if any(isinstance(e, getattr(sys.modules[mod], name)) for mod, name in USER_ERRORS if mod in sys.modules):
        return True
    if isinstance(e, ValueError):
        if type(e).__module__.startswith("boir_core."):  # the kit's own error classes (DataError, ...)
            return True
        tb = e.__traceback__
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        if tb is not None and str(tb.tb_frame.f_globals.get("__name__", "")).startswith("boir_core.data"):
            return True  # raised by the data code itself (a bad annotation, image or size)
    return isinstance(e, RuntimeError) and str(e).startswith("cannot read checkpoint")


def describe_error(e: BaseException) -> tuple[int, str]:
    """(exit status, one-line message) for an exception that ended a command: 2 for an error in what the user
    asked for or gave (config, data, paths, checkpoints), 1 for an unexpected (internal) error."""
    if isinstance(e, OSError):  # a missing file, a folder without permission, a full disk, ...
        return 2, _os_message(e)
    if _user_error(e):
        return 2, str(e) or type(e).__name__
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""  # torch's messages run over many lines
    return 1, f"internal error: {type(e).__name__}: {first}"


def _os_message(e: OSError) -> str:
    if e.filename is None or e.strerror is None:  # a message of the kit's own (FileNotFoundError("..."))
        if e.strerror is None:
            return str(e)
        return e.strerror + (f" ({_OS_HINTS[e.errno]})" if e.errno in _OS_HINTS else "")
    name = f"{e.filename} -> {e.filename2}" if e.filename2 is not None else str(e.filename)
    hint = _OS_HINTS.get(e.errno)
    return f"{name}: {e.strerror}" + (f" ({hint})" if hint else "")


if __name__ == "__main__":
    sys.exit(main())
