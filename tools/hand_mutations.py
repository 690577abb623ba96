"""Issue 14's hand mutations: re-apply one wiring bug, run the tests that must notice it, restore.

    python tools/hand_mutations.py NAME [copy]    # copy: mutate a private copy under /tmp (runs in parallel)
    python tools/hand_mutations.py --list

Prints CAUGHT / NOT CAUGHT with the failing tests, and that the implementation's git diff is clean again.
"""
import subprocess, sys, os
from pathlib import Path
REPO = Path(__file__).resolve().parent.parent
MUT = {
 "dummy_box": ("boir_core/losses/box.py", "* (valid & real).to(pred.dtype)", "* valid.to(pred.dtype)", ["tests/losses/test_box_loss.py"]),
 "clip_inf": ("boir_core/engine/train.py", "clip_grad_norm_(model.parameters(), cfg.train.clip_grad)", "clip_grad_norm_(model.parameters(), float('inf'))", ["tests/engine/test_train_wiring.py", "-k", "first_steps or clipping"]),
 "kernel3": ("boir_core/engine/decode.py", "center_pool_kernel=test_cfg.center_pool_kernel", "center_pool_kernel=3", ["tests/engine/test_decode_config.py"]),
 "quarter_sign": ("boir_core/engine/decode.py", "x.float() + 0.25 * dx, y.float() + 0.25 * dy", "x.float() - 0.25 * dx, y.float() - 0.25 * dy", ["tests/engine/test_decode.py"]),
 "flip_perm": ("boir_core/engine/decode.py", "mirrored = inst[:n], inst[n:][:, perm]", "mirrored = inst[:n], inst[n:]", ["tests/engine/test_decode.py"]),
 "lr_per_epoch": ("boir_core/engine/train.py", "lr = float(lrs[global_iter])", "lr = float(lrs[it])", ["tests/engine/test_train_wiring.py", "-k", "closed_form"]),
 "no_weight_decay": ("boir_core/engine/optimization.py", "lr=tc.lr, weight_decay=tc.weight_decay)", "lr=tc.lr, weight_decay=0.0)", ["tests/engine/test_train_wiring.py", "-k", "weight_decay"]),
 "ddp_same_rank": ("boir_core/engine/train.py", "num_replicas=dinfo.world_size, rank=dinfo.rank,", "num_replicas=dinfo.world_size, rank=0,", ["tests/engine/test_train_wiring.py", "-k", "ddp"]),
 "no_transfer": ("boir_core/engine/train.py", "    if cfg.train.transfer_from:\n        report = load_weights(", "    if False:\n        report = load_weights(", ["tests/engine/test_checkpoint_wiring.py", "-k", "transfer_from_loads"]),
 "last_pt_unwrap": ("boir_core/engine/runner.py", '            source = obj["model_state"]', '            pass', ["tests/engine/test_checkpoint_wiring.py", "-k", "last_pt"]),
 "no_step": ("boir_core/engine/train.py", "    scaler.step(optimizer)\n", "", ["tests/engine/test_overfit.py"]),
}
if len(sys.argv) < 2 or sys.argv[1] == "--list":
    print("\n".join(MUT))
    sys.exit(0)
name = sys.argv[1]
f, old, new, tests = MUT[name]
ORIG = REPO
if len(sys.argv) > 2 and sys.argv[2] == "copy":  # run in a private copy so that several can run at once
    import tempfile
    REPO = Path(tempfile.gettempdir()) / f"boir_hand_mutation_{name}"
    import shutil
    shutil.rmtree(REPO, ignore_errors=True)
    shutil.copytree(ORIG, REPO, ignore=shutil.ignore_patterns("build", ".git", "mutants", "runs", "data", "__pycache__"))
p = REPO / f
src = p.read_text()
assert src.count(old) == 1, (name, src.count(old))
p.write_text(src.replace(old, new))
try:
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1", MPLBACKEND="Agg")
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests], cwd=REPO, env=env,
                       capture_output=True, text=True)
    tail = [l for l in r.stdout.splitlines() if l.startswith(("FAILED", "ERROR")) or " passed" in l or " failed" in l]
    print(f"{name}: {'CAUGHT' if r.returncode != 0 else 'NOT CAUGHT'} (rc {r.returncode})\n  " + "\n  ".join(tail[-8:]), flush=True)
finally:
    p.write_text(src)
    d = subprocess.run(["git", "diff", "--stat", "--", f], cwd=ORIG, capture_output=True, text=True).stdout
    print(f"  restored {f}: git diff {'clean' if not d.strip() else 'DIRTY ' + d}", flush=True)
