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
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

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
    from .engine.runner import prepare_demo_data

    prepare_demo_data(cfg, say=lambda m: print(m, file=sys.stderr))


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", default=None,
                   help="YAML file or the name of one of the kit's configs (coco_w32, demo, t4_full, ...; default: "
                        "built-in defaults)")
    p.add_argument("overrides", nargs="*", default=[], help="key=value overrides, e.g. train.epochs=5")


def cmd_train(args) -> int:
    from .engine.train import train

    cfg = _config(args)
    if args.dry_run:
        from .engine.dryrun import dry_run, format_dry_run

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
    from .engine.runner import run_evaluation

    cfg = _config(args)
    _data(cfg)
    out = run_evaluation(cfg, args.checkpoint, out_dir=args.out, key=args.key, progress=not args.quiet)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun every process returns the same result
        print(json.dumps(out["metrics"], indent=2))
        print(f"[evaluate] {out['images']} images on {out['processes']} process(es); metrics written to "
              f"{out['metrics_path']}")
    return 0


def cmd_predict(args) -> int:
    from .engine.predict import DRAW_MIN_SCORE, predict

    cfg = _config(args)
    min_score = DRAW_MIN_SCORE if args.draw_min_score is None else args.draw_min_score
    report = predict(cfg, args.checkpoint, args.inputs, output=args.output, draw_dir=args.draw,
                     draw_min_score=min_score, progress=not args.quiet)
    print(f"[predict] {report['num_poses']} poses on {report['num_images']} images -> {args.output}"
          + (f" ({report['skipped']} unreadable inputs skipped)" if report["skipped"] else ""))
    return 0


def cmd_export(args) -> int:
    from .engine.export import export_checkpoint

    cfg = _config(args)
    paths = export_checkpoint(cfg, args.checkpoint, fmt=args.format, output=args.output)
    print(f"[export] {args.format}: " + ", ".join(str(p) for p in paths.values()))
    return 0


def cmd_convert_checkpoint(args) -> int:
    """Rewrite a trusted file the kit refuses (it holds Python objects) as data (``weights_only=True``)."""
    from .engine.convert import convert_checkpoint

    report = convert_checkpoint(args.file, args.output, trust=args.trust)  # without --trust: refused, nothing read
    print(f"[convert-checkpoint] {report.summary()}")
    return 0


def cmd_profile(args) -> int:
    from .engine.profile import profile

    cfg = _config(args)
    res = profile(cfg, params_only=args.params_only, input_size=args.input_size, repeats=args.repeats,
                  flip_test=not args.no_flip)
    if args.json:
        print(json.dumps(res))
    else:
        from .engine.profile import format_profile

        print(format_profile(res))
    return 0


def cmd_demo(args) -> int:
    from .engine.demo import run_demo

    run_demo(out_dir=args.out, config=args.config or "demo", overrides=args.overrides,
             notebooks=not args.no_notebooks)
    return 0


def cmd_reproduce(args) -> int:
    """The library's :func:`boir_core.paper.reproduce.reproduce`, then the tables rendered into
    ``<results_dir>/tables_<n>.md`` and printed (no notebook: notebook 06 is a view over the same calls)."""
    kwargs, overrides = _reproduce_arguments(args.overrides)  # a mistake is named before torch is imported
    from .paper import reproduce as rp

    if args.results_dir:
        kwargs["results_dir"] = args.results_dir
    report = rp.reproduce(args.table, overrides=overrides, **kwargs)
    print(report.summary())
    path = rp.write_tables(report)
    print(path.read_text())
    print(f"[reproduce] Table {args.table or 'all'}: {path}")
    return 0


#: ``reproduce``'s own arguments that ``key=value`` may set (a key with a dot is a config override instead).
REPRODUCE_ARGUMENTS = {"data_root": str, "checkpoint_dir": str, "train": "bool", "gpus": int, "demo": "demo",
                       "demo_ablation_rows": "rows", "demo_images": int, "demo_train_iters": int,
                       "demo_checkpoint": str, "overwrite": "bool", "latency_repeats": int}


def _reproduce_arguments(items: list[str]) -> tuple[dict, list[str]]:
    """Split ``key=value`` items into reproduce()'s arguments and config overrides (``section.key=value``)."""
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


def build_parser() -> argparse.ArgumentParser:
    prog = "boir" if Path(sys.argv[0]).name == "boir" else "python -m boir_core"
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("evaluate", help="evaluate a checkpoint, write a metrics JSON")
    _add_common(p)
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint, a run folder, a released .pth, or shipped:boir / shipped:cid")
    p.add_argument("--out", default=None, help="output folder (default: eval/ next to the checkpoint; for the "
                                              "shipped weights <output_dir>/<name>/eval in the working folder)")
    p.add_argument("--key", default=None, help="table row key recorded in the metrics JSON")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="predict poses on images / a folder / a video")
    p.add_argument("--config", "-c", default=None,
                   help="YAML file or config name (default: the shipped weights' own config for shipped:boir / "
                        "shipped:cid, else the built-in defaults)")
    p.add_argument("--checkpoint", required=True, help="weights file, run folder, released .pth, or shipped:boir / "
                                                       "shipped:cid (the demo weights inside the package)")
    p.add_argument("--output", "-o", required=True, help="COCO-format results JSON")
    p.add_argument("--draw", default=None, help="folder for images with drawn skeletons")
    p.add_argument("--draw-min-score", type=float, default=None,
                   help="draw only people scored at least this (default 0.05; the JSON keeps every pose)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("inputs", nargs="+", help="image files, folders or video files; key=value overrides too")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export the inference network (ONNX)")
    _add_common(p)
    p.add_argument("--checkpoint", required=True,
                   help="our checkpoint, a run folder, a released .pth, or shipped:boir / shipped:cid")
    p.add_argument("--format", default="onnx", choices=["onnx"])
    p.add_argument("--output", "-o", default=None,
                   help="output folder for dense.onnx, instance.onnx, meta.json (default <output_dir>/<name>/onnx)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("convert-checkpoint",
                       help="rewrite a TRUSTED older weights / training-state file as data the kit reads")
    p.add_argument("file", help="the file the kit refused (it holds Python objects: a full unpickling runs code)")
    p.add_argument("--trust", action="store_true",
                   help="you trust where FILE came from: it is unpickled fully (which runs any code it carries) "
                        "once, here, and written back as tensors and plain values; without it nothing is read")
    p.add_argument("--output", "-o", default=None,
                   help="the converted file (default: <stem>.safe.pt beside FILE; FILE itself: replaced)")
    p.set_defaults(func=cmd_convert_checkpoint)

    p = sub.add_parser("profile", help="parameter counts and latency (Table 5)")
    _add_common(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--params-only", action="store_true")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--no-flip", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("demo", help="the main job on SynthCrowd (executing the notebooks needs a checkout)")
    _add_common(p)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--no-notebooks", action="store_true",
                   help="skip executing the notebooks (what an installed package without a checkout can run)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("reproduce", help="run what one of the paper's tables needs and render it (paper / ours)")
    p.add_argument("--table", type=int, required=True, choices=range(0, 8), help="1-7, or 0 for all")
    p.add_argument("--results-dir", default=None, help="where the metrics files and tables_<n>.md go "
                                                          "(default: runs/reproduce/results)")
    p.add_argument("overrides", nargs="*", default=[],
                   help="reproduce's arguments as key=value (data_root=data checkpoint_dir=checkpoints train=true "
                        "gpus=4 demo=auto overwrite=true ...) and config overrides for every run "
                        "(model.pretrained=FILE test.max_images=100)")
    p.set_defaults(func=cmd_reproduce)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "predict":  # split key=value overrides from input paths
        args.overrides = [a for a in args.inputs if "=" in a and not Path(a).exists()]
        args.inputs = [a for a in args.inputs if a not in args.overrides]
    try:
        return args.func(args)
    except Exception as e:
        if not _user_error(e):
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


#: Errors in what the user asked for (printed as one line, exit status 2), by module: the classes of the modules
#: that import torch are looked up only when loaded (an instance of one means its module is), so a command that
#: needs no network (``--help``, ``demo`` without a checkout) answers without importing torch.
USER_ERRORS = (("boir_core.config", "ConfigError"), ("boir_core.paths", "NeedsCheckout"),
               ("boir_core.engine.resume_check", "ResumeMismatchError"),
               ("boir_core.model.checkpoints", "CheckpointError"), ("boir_core.engine.backends", "BackendUnavailable"))


def _user_error(e: BaseException) -> bool:
    return any(isinstance(e, getattr(sys.modules[mod], name)) for mod, name in USER_ERRORS if mod in sys.modules)


if __name__ == "__main__":
    sys.exit(main())
