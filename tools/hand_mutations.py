"""Hand mutations: re-apply one wiring bug, run the tests that must notice it, restore.

Each mutation replaces one exact piece of source text (found exactly once) with a bug a researcher could
not see in a loss curve, runs the tests that are meant to notice it, and puts the source back.

    python tools/hand_mutations.py --list              # every mutation, the six core ones marked
    python tools/hand_mutations.py NAME [NAME ...]     # mutate the working tree, one after the other
    python tools/hand_mutations.py --core --copy       # the six core ones, each in a private copy

The six *core* mutations are the wiring bugs that cost a researcher most: a wrong decode (quarter-pixel sign,
flip permutation), a wrong loss or target (dummy boxes, unclipped corners), gradient clipping ignored, and
OCHuman's pooling kernel lost. tests/test_tools.py checks that every mutation still finds its text.

``--copy`` mutates a private copy of the repository under the temporary folder instead of the working
tree (so a crash or Ctrl-C never leaves a bug in the sources, and several runs can go on side by side).

Prints, per mutation, CAUGHT (the tests fail), NOT CAUGHT (they pass) or ERROR (pytest could not run
them: collection error, no test selected...), with the tests that failed; then a summary table.
The exit status is 0 only when every mutation run was CAUGHT. Not part of ``make test``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: top-level entries never copied by --copy (build outputs, git, results); data/ is linked, not copied
NOT_COPIED = {".git", "build", "mutants", "runs", ".venv", ".pytest_cache", "dist"}


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str  # the bug, as a researcher would describe it
    path: str  # file in the repository
    old: str  # exact source text, found exactly once
    new: str  # what it becomes
    tests: tuple[str, ...]  # pytest arguments: the tests that must notice the bug
    core: bool = False  # one of the six wiring bugs that cost a researcher most (``--core``)


MUTATIONS = [
    # -- the six core wiring bugs ---------------------------------------------------------------------------
    Mutation("quarter_sign", "quarter-pixel refinement sign flipped (decode)",
             "boir_core/engine/inference/decode.py",
             "x.float() + 0.25 * dx, y.float() + 0.25 * dy",
             "x.float() - 0.25 * dx, y.float() - 0.25 * dy",
             ("tests/engine/test_decode.py",), core=True),
    Mutation("flip_perm", "flip-index permutation dropped (decode)",
             "boir_core/engine/inference/decode.py",
             "mirrored = inst[:n], inst[n:][:, perm]",
             "mirrored = inst[:n], inst[n:]",
             ("tests/engine/test_decode.py",), core=True),
    Mutation("dummy_box", "dummy boxes counted in the box loss",
             "boir_core/losses/box.py",
             "* (valid & real).to(pred.dtype)",
             "* valid.to(pred.dtype)",
             ("tests/losses/test_box_loss.py",), core=True),
    Mutation("corner_clip", "corners not clipped to the map in the Gaussian radius (targets)",
             "boir_core/data/targets.py",
             "c = np.clip(corners, 0, output_size - 1)",
             "c = corners",
             ("tests/data/test_targets.py",), core=True),
    Mutation("clip_inf", "gradient clipping ignored (clip_grad_norm_(..., inf))",
             "boir_core/engine/training/job.py",
             "clip_grad_norm_(model.parameters(), cfg.train.clip_grad)",
             "clip_grad_norm_(model.parameters(), float('inf'))",
             ("tests/engine/test_train_wiring.py", "-k", "first_steps or clipping"), core=True),
    Mutation("kernel3", "OCHuman's center pool kernel 11 lost (decode settings hard-coded to 3)",
             "boir_core/engine/inference/decode_settings.py",
             "center_pool_kernel=test_cfg.center_pool_kernel",
             "center_pool_kernel=3",
             ("tests/engine/test_decode_config.py",), core=True),
    # -- further wiring bugs the wiring tests were written against ------------------------------------------
    Mutation("lr_per_epoch", "learning rate indexed by the iteration within the epoch",
             "boir_core/engine/training/train.py",
             "lr = float(self.lrs[self.global_iter])",
             "lr = float(self.lrs[self.global_iter % self.job.plan.iters_per_epoch])",
             ("tests/engine/test_train_wiring.py", "-k", "closed_form")),
    Mutation("no_weight_decay", "AdamW built without weight decay",
             "boir_core/engine/training/optimization.py",
             "lr=tc.lr, weight_decay=tc.weight_decay)",
             "lr=tc.lr, weight_decay=0.0)",
             ("tests/engine/test_train_wiring.py", "-k", "weight_decay")),
    Mutation("ddp_same_rank", "every DDP rank samples rank 0's share",
             "boir_core/engine/training/job.py",
             "num_replicas=dinfo.world_size, rank=dinfo.rank,",
             "num_replicas=dinfo.world_size, rank=0,",
             ("tests/engine/test_train_wiring.py", "-k", "ddp")),
    Mutation("no_transfer", "train.transfer_from ignored",
             "boir_core/model/pretrained.py",
             "    if transfer_from:\n        rep = load_weights(",
             "    if False:\n        rep = load_weights(",
             ("tests/engine/test_checkpoint_wiring.py", "-k", "transfer_from_loads")),
    Mutation("last_pt_unwrap", "a training state (last.pt) loaded without unwrapping model_state",
             "boir_core/model/checkpoints.py",
             '    if isinstance(obj, Mapping) and obj.get("format") == TRAIN_STATE_FORMAT:\n',
             "    if False:\n",
             ("tests/engine/test_checkpoint_wiring.py", "-k", "last_pt")),
    Mutation("no_step", "the optimiser never steps",
             "boir_core/engine/training/job.py",
             "        scaler.step(optimizer)\n",
             "",
             ("tests/engine/test_overfit.py",)),
]
BY_NAME = {m.name: m for m in MUTATIONS}


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # CAUGHT / NOT CAUGHT / ERROR
    returncode: int
    failed: list[str]  # "FAILED tests/...::test - reason" lines
    summary: str  # pytest's last line ("2 failed, 5 passed in 12.3s")
    seconds: float


def copy_repository(name: str) -> Path:
    """A private copy of the repository for one mutation: sources copied, data/ linked (never copied)."""
    dest = Path(tempfile.gettempdir()) / f"boir_hand_mutation_{name}"
    shutil.rmtree(dest, ignore_errors=True)

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in ("__pycache__", ".pytest_cache")}
        if Path(folder) == REPO:
            skipped |= {n for n in names if n in NOT_COPIED}
        return skipped

    shutil.copytree(REPO, dest, ignore=ignore, symlinks=True)  # data/ is a link and stays one
    return dest


def run_pytest(repo: Path, tests: tuple[str, ...]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(repo), HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    # the copy is outside the worktree: point the real-fixture tests at the same files as in the worktree
    fixtures = REPO.parent / "shared" / "fixtures" / "real"
    if "BOIR_REAL_FIXTURES" not in env and fixtures.is_dir():
        env["BOIR_REAL_FIXTURES"] = str(fixtures.resolve())
    cmd = [sys.executable, "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    return subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True)


def verdict_of(returncode: int) -> str:
    # pytest: 0 all passed, 1 some tests failed; 2-5 interrupted, internal or usage error, nothing collected
    return {0: "NOT CAUGHT", 1: "CAUGHT"}.get(returncode, "ERROR")


def apply_and_test(m: Mutation, copy: bool) -> Outcome:
    repo = copy_repository(m.name) if copy else REPO
    path = repo / m.path
    source = path.read_text()
    found = source.count(m.old)
    if found != 1:
        raise SystemExit(f"{m.name}: the text to mutate occurs {found} times in {m.path} (expected once):\n"
                         f"{m.old!r}\nUpdate MUTATIONS in {Path(__file__).name}.")
    path.write_text(source.replace(m.old, m.new))
    start = time.monotonic()
    try:
        r = run_pytest(repo, m.tests)
    finally:
        path.write_text(source)
    seconds = time.monotonic() - start
    lines = r.stdout.splitlines()
    failed = [x for x in lines if x.startswith(("FAILED", "ERROR"))]
    summary = next((x.strip("= ") for x in reversed(lines) if " in " in x and ("passed" in x or "failed" in x
                                                                            or "error" in x)), "")
    if r.returncode not in (0, 1):
        failed += (r.stdout + r.stderr).strip().splitlines()[-5:]
    if copy:
        shutil.rmtree(repo, ignore_errors=True)
    return Outcome(m, verdict_of(r.returncode), r.returncode, failed, summary, seconds)


def git_diff_clean(path: str) -> bool:
    out = subprocess.run(["git", "diff", "--stat", "--", path], cwd=REPO, capture_output=True, text=True)
    return not out.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutations to run (see --list)")
    ap.add_argument("--core", action="store_true",
                    help="run the six core mutations (the wiring bugs that cost a researcher most)")
    ap.add_argument("--copy", action="store_true", help="mutate a private copy under the temporary folder")
    ap.add_argument("--list", action="store_true", help="list the mutations and exit")
    a = ap.parse_args(argv)
    if a.list or not (a.names or a.core):
        for m in MUTATIONS:
            print(f"{m.name:16} {'core' if m.core else '    '}  {m.what}  [{m.path}]")
        return 0
    unknown = [n for n in a.names if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown mutation(s) {unknown}; known: {', '.join(BY_NAME)}")
    chosen = [m for m in MUTATIONS if m.core] if a.core else []
    chosen += [BY_NAME[n] for n in a.names if BY_NAME[n] not in chosen]

    outcomes = []
    for m in chosen:
        print(f"-- {m.name}: {m.what} ({m.path}) against {' '.join(m.tests)}", flush=True)
        o = apply_and_test(m, a.copy)
        outcomes.append(o)
        print(f"{m.name}: {o.verdict} (pytest rc {o.returncode}, {o.seconds:.0f} s) {o.summary}", flush=True)
        for line in o.failed[-8:]:
            print(f"    {line}", flush=True)
        if not a.copy:
            print(f"    restored {m.path}: git diff {'clean' if git_diff_clean(m.path) else 'DIRTY'}", flush=True)

    print("\n| mutation | verdict | failing tests |\n|---|---|---|")
    for o in outcomes:
        tests = "; ".join(x.split(" - ")[0].removeprefix("FAILED ").removeprefix("ERROR ") for x in o.failed
                          if x.startswith(("FAILED", "ERROR"))) or "-"
        print(f"| {o.mutation.what} | {o.verdict} | {tests} |")
    return 0 if all(o.verdict == "CAUGHT" for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
