"""Training faults never lose or corrupt a run: a diverging run keeps its last finite checkpoint, a full disk
leaves the previous checkpoint intact, a second training into the same run folder is refused while the first
runs (a stale lock is taken over), Ctrl-C saves a checkpoint at the step boundary that resumes exactly, and so
does a ``kill -9`` (from the last periodic checkpoint).

Tiny config and tiny SynthCrowd data (``tests/engine/conftest.py``'s fixtures, rebuilt here: that conftest
is not visible from this folder).
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch

import boir_core.engine.training.job as job_mod
from boir_core.config import load_config
from boir_core.engine.training.checkpointing import load_training_state
from boir_core.engine.training.runlock import LOCK_NAME, RunLock, RunLockedError
from boir_core.engine.training.train import NonFiniteLossError, NonFiniteStateError, train

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py; also makes runs bit-comparable


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    make_synthcrowd(root, SynthCrowdSpec(num_train=8, num_val=3, seed=3, image_size=(112, 144), max_people=3))
    return root


def _overrides(synth, *extra):
    return [f"data.root={synth}", "train.device=cpu", "data.workers=0", *extra]


def _cfg(synth, *extra):
    return load_config("tiny", _overrides(synth, *extra))


def _nonfinite(state_dict):
    return [k for k, v in state_dict.items() if v.is_floating_point() and not torch.isfinite(v).all()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- non-finite training states
def test_a_diverging_run_keeps_its_last_finite_checkpoint(synth, tmp_path):
    """``train.lr=1e10`` (the issue's case: last.pt overwritten with 93 of 558 tensors inf/NaN): the run stops
    with an error that names the step and the checkpoint it left, and that checkpoint is finite."""
    cfg = _cfg(synth, "train.lr=1e10", "train.epochs=3", "train.max_steps_per_epoch=2", "train.save_every=1",
               "train.max_nonfinite_in_a_row=2")
    run = tmp_path / "run"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NonFiniteLossError) as err:
            train(cfg, run, progress=False)
    msg = str(err.value)
    ckpt = run / "checkpoints" / "last.pt"
    state = load_training_state(ckpt)
    assert not _nonfinite(state["model_state"]), "a non-finite training state was saved"
    assert not [k for st in state["optimizer"]["state"].values() for k, v in st.items()
                if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]
    assert f"{ckpt} holds step {state['global_iter']} (epoch {state['epoch']}), the last finite state" in msg
    assert "at step" in msg and "train.lr (now 1e+10)" in msg
    assert not (run / "final.pt").exists() and not (run / LOCK_NAME).exists()


def test_a_step_that_overflows_batchnorm_statistics_is_undone(synth, tmp_path, monkeypatch):
    """The mechanism behind the 93 tensors: a forward pass whose activations overflow puts inf into the
    BatchNorm running statistics even when the step is skipped. The step is skipped *and* undone."""
    cfg = _cfg(synth, "train.epochs=1", "train.max_steps_per_epoch=3")
    calls = {"n": 0}
    real_build = job_mod.build_network

    def build(cfg, dinfo):
        model, core = real_build(cfg, dinfo)
        bn = next(m for m in core.modules() if isinstance(m, torch.nn.BatchNorm2d))

        def overflow(module, args):
            calls["n"] += 1
            return (args[0] * float("inf"),) if calls["n"] == 2 else None

        bn.register_forward_pre_hook(overflow)
        return model, core

    monkeypatch.setattr(job_mod, "build_network", build)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        s = train(cfg, tmp_path / "run", progress=False)
    assert s.skipped_nonfinite == 1 and len(s.losses) == 2
    assert any("non-finite" in str(x.message) and "step skipped" in str(x.message) for x in w)
    state = load_training_state(tmp_path / "run" / "checkpoints" / "last.pt")
    assert not _nonfinite(state["model_state"])
    final = torch.load(tmp_path / "run" / "final.pt", weights_only=True)["state_dict"]
    assert not _nonfinite(final)


def test_weights_that_turn_non_finite_are_never_saved(synth, tmp_path, monkeypatch):
    """A step with a finite loss that leaves inf in the weights (or the optimizer's moments): the next save
    refuses, the error names a tensor, the step, and the checkpoint that is kept; final.pt is not written."""
    cfg = _cfg(synth, "train.epochs=2", "train.max_steps_per_epoch=2", "train.save_every=1")
    real_step = job_mod.TrainingJob.step
    seen = {"n": 0}

    def step(job, batch):
        out = real_step(job, batch)
        seen["n"] += 1
        if seen["n"] == 3:  # inside epoch 2, after the epoch-1 checkpoint (step 2)
            for st in job.optimizer.state.values():
                st["exp_avg_sq"].fill_(float("inf"))
                break
        return out

    monkeypatch.setattr(job_mod.TrainingJob, "step", step)
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.pt"
    with pytest.raises(NonFiniteStateError) as err:
        train(cfg, run, progress=False)
    msg = str(err.value)
    assert "non-finite by step 4 (epoch 2)" in msg and "optimizer exp_avg_sq of" in msg
    assert f"It was not saved: {ckpt} holds step 2 (epoch 1), the last finite state" in msg
    state = load_training_state(ckpt)
    assert state["global_iter"] == 2 and state["epoch"] == 1
    assert not (run / "final.pt").exists() and not (run / LOCK_NAME).exists()


# ---------------------------------------------------------------- a full disk
def test_a_full_disk_leaves_the_previous_checkpoint_intact(synth, tmp_path, monkeypatch):
    cfg = _cfg(synth, "train.epochs=2", "train.max_steps_per_epoch=1", "train.save_every=1")
    run = tmp_path / "run"
    ckpt = run / "checkpoints" / "last.pt"
    real_save = torch.save
    seen = {"saves": 0, "before": None}

    def save(obj, f, *a, **k):
        seen["saves"] += 1
        if seen["saves"] == 1:
            return real_save(obj, f, *a, **k)
        seen["before"] = _sha(ckpt)  # the epoch-1 checkpoint, as it was before the failing write
        f.write(b"\x80\x02half a checkpoint")  # part of the temp file is written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", save)
    with pytest.raises(OSError) as err:
        train(cfg, run, progress=False)
    assert err.value.errno == errno.ENOSPC and seen["saves"] == 2
    assert _sha(ckpt) == seen["before"], "the previous checkpoint was touched"
    monkeypatch.setattr(torch, "save", real_save)
    assert load_training_state(ckpt)["global_iter"] == 1
    assert not [p.name for p in run.rglob("*") if p.name.endswith(".tmp")], "a temp file was left behind"
    assert not (run / LOCK_NAME).exists()


# ---------------------------------------------------------------- one training per run folder
def test_a_second_training_into_a_locked_run_folder_is_refused(synth, tmp_path):
    cfg = _cfg(synth, "train.epochs=1", "train.max_steps_per_epoch=1")
    run = tmp_path / "run"
    holder = RunLock(run).acquire()  # another open file description: a second holder, as another process
    try:
        with pytest.raises(RunLockedError) as err:
            train(cfg, run, progress=False)
        msg = str(err.value)
        assert f"pid {os.getpid()} on " in msg and "running since " in msg and str(run / LOCK_NAME) in msg
        assert sorted(p.name for p in run.iterdir()) == [LOCK_NAME]  # nothing of the refused run was written
    finally:
        holder.release()
    assert not run.exists()  # the holder made the folder and left it empty: it is removed again
    s = train(cfg, run, progress=False)  # free again
    assert s.iterations == 1 and not (run / LOCK_NAME).exists()
    with pytest.raises(RuntimeError):
        RunLock(run).acquire().acquire()  # one RunLock holds once


def test_a_stale_lock_file_is_taken_over_with_a_message(synth, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)  # a process that has ended
    import socket

    (run / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": socket.gethostname(), "since": "yesterday"}))
    s = train(_cfg(synth, "train.epochs=1", "train.max_steps_per_epoch=1"), run, progress=False)
    out = capsys.readouterr().out
    assert s.iterations == 1
    assert f"taking over the stale lock {run / LOCK_NAME}" in out and f"pid {pid} on" in out
    assert "is no longer running" in out
    assert not (run / LOCK_NAME).exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork (DataLoader workers are forked children)")
def test_a_worker_outliving_a_killed_training_does_not_keep_its_lock(tmp_path):
    """A forked child (a DataLoader worker) shares its parent's open files: if it kept the lock, a training
    killed with ``kill -9`` would keep its folder locked for as long as its workers live."""
    run = tmp_path / "run"
    release_r, release_w = os.pipe()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the training: takes the lock, forks a worker, dies without releasing anything
        try:
            os.close(release_w)
            RunLock(run, log=lambda m: None).acquire()
            if os.fork() == 0:  # the worker: lives on until told to exit
                os.read(release_r, 1)
                os._exit(0)
            os.write(ready_w, f"{os.getpid()}\n".encode())
        finally:
            os._exit(0)
    os.close(release_r)
    os.close(ready_w)
    try:
        training_pid = int(os.read(ready_r, 64).decode())
        os.waitpid(pid, 0)  # the training is gone; its worker still runs
        messages = []
        lock = RunLock(run, log=messages.append).acquire()
        lock.release()
        assert len(messages) == 1 and f"stale lock {run / LOCK_NAME}" in messages[0]
        assert f"pid {training_pid} on" in messages[0] and "is no longer running" in messages[0]
    finally:
        os.write(release_w, b"x")
        os.close(release_w)
        os.close(ready_r)


# ---------------------------------------------------------------- Ctrl-C and kill -9 in a real process
CHILD = textwrap.dedent("""
    import runpy, signal, sys
    # a terminal's Ctrl-C reaches the training even when the test suite itself runs as a background job (whose
    # children inherit SIGINT ignored, which train() respects on purpose)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    import torch
    torch.set_num_threads(1)
    import boir_core.engine.training.job as job_mod

    block_at = int(sys.argv.pop(1))
    real_step, n = job_mod.TrainingJob.step, [0]

    def step(*a, **k):  # the signal arrives while step `block_at` runs
        out = real_step(*a, **k)
        n[0] += 1
        if n[0] == block_at:
            print("BLOCKED IN STEP", n[0], flush=True)
            sys.stdin.readline()
        return out

    job_mod.TrainingJob.step = step
    runpy.run_module("boir_core", run_name="__main__", alter_sys=True)
""")

RESUMABLE = ("train.epochs=2", "train.max_steps_per_epoch=4", "train.save_every=1")


def _start_child(synth, run: Path, block_at: int) -> tuple[subprocess.Popen, list[str]]:
    """``python -m boir_core train ... --no-resume`` in a child process that stops inside step ``block_at``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", CHILD, str(block_at), "train", "--config", "tiny", "--run-dir", str(run),
           "--no-resume", "--quiet", *_overrides(synth, *RESUMABLE)]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO, env=env)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.startswith("BLOCKED IN STEP"):
            return proc, lines
    proc.wait()
    raise AssertionError(f"the child training ended before step {block_at}:\n{''.join(lines)}")


@pytest.fixture(scope="module")
def uninterrupted(synth, tmp_path_factory, one_thread):
    run = tmp_path_factory.mktemp("uninterrupted") / "run"
    s = train(_cfg(synth, *RESUMABLE), run, progress=False)
    assert s.iterations == 8
    return s, torch.load(run / "final.pt", weights_only=True)["state_dict"]


def _same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # a child process: a few seconds to import torch
def test_ctrl_c_saves_at_the_step_boundary_and_resumes_exactly(synth, tmp_path, uninterrupted, capsys):
    run = tmp_path / "run"
    proc, lines = _start_child(synth, run, block_at=3)  # step 3 of 4 in epoch 1: no checkpoint yet
    try:
        # while it trains, a second training into its folder is refused, naming it
        with pytest.raises(RunLockedError, match=rf"pid {proc.pid} on .* running since .*lock file {run / LOCK_NAME}"):
            train(_cfg(synth, *RESUMABLE), run, progress=False)
        proc.send_signal(signal.SIGINT)  # Ctrl-C, while step 3 runs
        out, _ = proc.communicate(input="\n", timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode != 0, "an interrupted run must not exit 0"
    ckpt = run / "checkpoints" / "last.pt"
    msgs = [x for x in out.splitlines() if "interrupted (Ctrl-C)" in x]
    assert len(msgs) == 1, out
    assert f"after step 3 of 8, checkpoint saved: {ckpt}. To resume, run the same command again: " in msgs[0]
    assert "-m boir_core train --config tiny --run-dir" in msgs[0] and str(run) in msgs[0]
    assert "--no-resume" not in msgs[0]  # rerunning with it would start over
    state = load_training_state(ckpt)
    assert state["global_iter"] == 3 and state["epoch"] == 0 and state["extra"]["in_epoch"]["iters_done"] == 3
    assert not (run / LOCK_NAME).exists() and not list(run.rglob("*.tmp"))

    # the same command again (here: the same config and folder) continues inside epoch 1
    resumed = train(_cfg(synth, *RESUMABLE), run, progress=False)
    assert "at epoch 0, step 3 of the epoch, iteration 3" in capsys.readouterr().out
    full, final = uninterrupted
    assert resumed.iterations == 5 and resumed.losses == full.losses[3:]  # exactly, not approximately
    assert _same_weights(torch.load(run / "final.pt", weights_only=True)["state_dict"], final)
    iters = [json.loads(x)["iter"] for x in (run / "metrics.jsonl").read_text().splitlines()
             if json.loads(x)["type"] == "iter"]
    assert iters == list(range(1, 9))  # one log of one run: no step twice, none missing


@pytest.mark.slow  # a child process: a few seconds to import torch
def test_kill_9_loses_only_the_steps_since_the_checkpoint_and_resumes_exactly(synth, tmp_path, uninterrupted,
                                                                              capsys):
    run = tmp_path / "run"
    proc, _ = _start_child(synth, run, block_at=6)  # epoch 2; the epoch-1 checkpoint holds step 4
    proc.kill()  # SIGKILL: no handler, no cleanup
    proc.communicate(timeout=60)
    ckpt = run / "checkpoints" / "last.pt"
    assert load_training_state(ckpt)["global_iter"] == 4
    assert not list(run.rglob("*.tmp")), "a half-written file was left behind"
    assert json.loads((run / LOCK_NAME).read_text())["pid"] == proc.pid  # left behind by the killed run
    resumed = train(_cfg(synth, *RESUMABLE), run, progress=False)
    out = capsys.readouterr().out
    assert f"taking over the stale lock {run / LOCK_NAME}" in out and f"pid {proc.pid} on" in out
    full, final = uninterrupted
    assert resumed.resumed_from_epoch == 1 and resumed.iterations == 4 and resumed.losses == full.losses[4:]
    assert _same_weights(torch.load(run / "final.pt", weights_only=True)["state_dict"], final)
    assert not (run / LOCK_NAME).exists()
    # steps 5 and 6, logged by the killed run and trained again, are in the log once (the resumed run's)
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in recs if r["type"] == "iter"] == list(range(1, 9))
    assert [r["iter"] for r in recs if r["type"] == "epoch"] == [4, 8]
