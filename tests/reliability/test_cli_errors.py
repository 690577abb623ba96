"""One way to fail: every command-line error is one ``error: ...`` line on stderr that names the file, key or
value; exit status 2 for what the user asked for or gave, 1 (and a pointer to ``--debug``) for an internal
error, 130 for Ctrl-C; the traceback only with ``--debug`` or ``BOIR_DEBUG=1``. Plus the config faults (a
malformed override, an unknown key, a billion-laughs YAML) and ``make lab`` with an empty token."""
from __future__ import annotations

import errno
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from boir_skips import skip_or_fail_in_ci

import boir_core.__main__ as cli
from boir_core.__main__ import main
from boir_core.config import ConfigError, load_config
from boir_core.data.annotations import DataError
from boir_core.data.transforms import eval_resize_size
from boir_core.engine.training.runlock import RunLockedError
from boir_core.engine.training.train import NonFiniteStateError
from boir_core.model import CheckpointError

REPO = Path(__file__).resolve().parents[2]


def _one_error_line(err: str) -> str:
    """The single line a failing command prints (no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def clean_env(monkeypatch):
    monkeypatch.delenv(cli.DEBUG_ENV, raising=False)


# ---- config faults ----------------------------------------------------------------------------------------------


def test_a_malformed_override_names_the_override(capsys, clean_env):
    """Measured: "model.atrous_rates=[1,2" gave a raw YAML ParserError naming no override."""
    assert main(["profile", "--config", "tiny", "--params-only", "model.atrous_rates=[1,2"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "'model.atrous_rates=[1,2'" in line and "not valid YAML" in line and "[1, 2, 3]" in line
    with pytest.raises(ConfigError, match=r"release_settings 'model.atrous_rates=\[6': the value '\[6' is not"):
        load_config("tiny", ["preset=release", "release_settings=['model.atrous_rates=[6']"])


def test_an_unknown_config_key_names_the_key(tmp_path, capsys, clean_env):
    assert main(["profile", "--config", "tiny", "--params-only", "train.lr_rate=0.1"]) == 2
    assert "'train.lr_rate'" in _one_error_line(capsys.readouterr().err)
    cfg = tmp_path / "mine.yaml"
    cfg.write_text("base: tiny\nmodel:\n  backbon: hrnet_w32\n")
    assert main(["profile", "--config", str(cfg), "--params-only"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(cfg) in line and "'model.backbon'" in line and "did you mean 'model.backbone'" in line


def _laughs(levels: int) -> str:
    """A YAML list nested ``levels`` deep through aliases: a few hundred bytes, 9**levels items written out."""
    nest = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    nest += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return "[" + ", ".join(nest) + "]"


def test_a_billion_laughs_config_is_rejected_in_one_short_line(tmp_path, capsys, clean_env):
    classic = tmp_path / "laughs.yaml"  # the anchors under keys of their own
    classic.write_text("\n".join(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" if i else
                                 'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]'
                                 for i in range(10)) + "\n")
    assert main(["profile", "--config", str(classic), "--params-only"]) == 2
    assert "unknown config key 'l0'" in _one_error_line(capsys.readouterr().err)
    # under a real key the error once printed the whole value (7 levels: 43 million strings, ~300 MB of text)
    for text, key in ((f"name: {_laughs(7)}\n", "name"), (f"model:\n  atrous_rates: {_laughs(7)}\n",
                                                           "model.atrous_rates[0]")):
        nested = tmp_path / "nested.yaml"
        nested.write_text(text)
        assert main(["profile", "--config", str(nested), "--params-only"]) == 2
        line = _one_error_line(capsys.readouterr().err)
        assert f"{nested}: {key} must be" in line and len(line) < 400
    item = f"release_settings={_laughs(7)}"  # as an override: the line quotes the item, and no more than that
    assert main(["profile", "--config", "tiny", "--params-only", item]) == 2
    assert len(_one_error_line(capsys.readouterr().err)) < len(item) + 200


# ---- one way to fail: what each kind of error prints and returns -------------------------------------------------


def _data_code_value_error():
    eval_resize_size(0, 10, 512)  # raises ValueError inside boir_core.data


ERRORS = {  # name: (what the command raises, exit status, text the line must hold)
    "config": (lambda: ConfigError("mine.yaml: unknown config key 'x'"), 2, "mine.yaml: unknown config key 'x'"),
    "data class": (lambda: DataError("ann.json: annotation id 7 refers to unknown image id 3"), 2,
                   "ann.json: annotation id 7 refers to unknown image id 3"),
    "missing file": (lambda: FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), "ann.json"), 2,
                     "ann.json: No such file or directory (check the path)"),
    "permission": (lambda: PermissionError(errno.EACCES, os.strerror(errno.EACCES), "/x/out"), 2,
                   "/x/out: Permission denied (check its permissions or choose another path)"),
    "full disk": (lambda: OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "out.json"), 2,
                  "out.json: No space left on device (the disk is full"),
    "kit's own message": (lambda: FileNotFoundError("checkpoint not found: w.pt"), 2, "checkpoint not found: w.pt"),
    "checkpoint class": (lambda: CheckpointError("w.pt: another keypoint count"), 2, "w.pt: another keypoint count"),
    "checkpoint read": (lambda: RuntimeError("cannot read checkpoint w.pt: UnpicklingError: x"), 2,
                        "cannot read checkpoint w.pt"),
    "run folder locked": (lambda: RunLockedError("runs/demo is in use by process 12 (runs/demo/train.lock)"), 2,
                          "runs/demo is in use by process 12"),
    "non-finite state": (lambda: NonFiniteStateError("step 9: weights not finite; last.pt holds step 8"), 2,
                         "step 9: weights not finite; last.pt holds step 8"),
    "internal": (lambda: KeyError("heatmap"), 1, "internal error: KeyError: 'heatmap' (run with --debug"),
    "internal ValueError": (lambda: ValueError("too many values to unpack"), 1, "internal error: ValueError"),
}


@pytest.mark.parametrize("name", list(ERRORS))
def test_each_error_is_one_line_with_its_exit_status(name, monkeypatch, capsys, clean_env):
    make, status, text = ERRORS[name]

    def command(args):
        raise make()

    monkeypatch.setattr(cli, "cmd_profile", command)
    assert main(["profile"]) == status
    assert text in _one_error_line(capsys.readouterr().err)


def test_a_value_error_of_the_data_code_is_an_input_error(monkeypatch, capsys, clean_env):
    monkeypatch.setattr(cli, "cmd_profile", lambda args: _data_code_value_error())
    assert main(["profile"]) == 2
    assert "image size must be positive, got 0x10" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("how", ["before", "after", "env"])
def test_debug_shows_the_traceback_and_keeps_the_status(how, monkeypatch, capsys, clean_env):
    def command(args):
        raise KeyError("heatmap")

    monkeypatch.setattr(cli, "cmd_profile", command)
    argv = {"before": ["--debug", "profile"], "after": ["profile", "--debug"], "env": ["profile"]}[how]
    if how == "env":
        monkeypatch.setenv(cli.DEBUG_ENV, "1")
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise KeyError("heatmap")' in err
    assert err.strip().splitlines()[-1] == "error: internal error: KeyError: 'heatmap'"
    def config_error(args):
        raise ConfigError("bad key")

    monkeypatch.setattr(cli, "cmd_profile", config_error)
    assert main(argv) == 2 and "Traceback" in capsys.readouterr().err


def test_ctrl_c_is_one_line_and_status_130_after_what_the_command_said(monkeypatch, capsys, clean_env):
    def command(args):
        print("[train] interrupted at step 7: saved runs/x/checkpoints/last.pt; resume with the same command",
              file=sys.stderr)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_profile", command)
    assert main(["profile"]) == 130
    assert capsys.readouterr().err.splitlines() == [
        "[train] interrupted at step 7: saved runs/x/checkpoints/last.pt; resume with the same command",
        "interrupted"]


def test_a_commands_own_usage_message_is_an_error_line(capsys, clean_env):
    assert main(["reproduce", "--table", "1", "bogus=1"]) == 2
    assert "error: reproduce: unknown argument 'bogus'" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("argv, says", [
    (["predict", "--config", "tiny", "--checkpoint", "w.pt", "x.jpg"],
     "predict: the following arguments are required: --output/-o; see "),
    (["trian"], "invalid choice: 'trian' (choose from 'train'"),
    (["reproduce", "--table", "9"], "reproduce: argument --table: invalid choice: 9"),
    (["train", "--no-such-option"], "unrecognized arguments: --no-such-option"),
])
def test_a_usage_error_of_the_parser_is_one_error_line(argv, says, capsys, clean_env):
    """argparse's own usage errors (a missing option, a mistyped command or choice): one line, exit status 2,
    naming the command and pointing to its --help, like every other error (not argparse's usage block)."""
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    line = _one_error_line(capsys.readouterr().err)
    assert says in line and line.endswith(" --help"), line


def test_the_real_entry_point_prints_one_line(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(cli.DEBUG_ENV, None)
    argv = [sys.executable, "-m", "boir_core", "reproduce", "--table", "1", "bogus=1"]  # fails before torch loads
    run = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: reproduce: unknown argument 'bogus'")
    assert len(run.stderr.strip().splitlines()) == 1


# ---- the measured cases, end to end -------------------------------------------------------------------------------


@pytest.fixture()
def image(tmp_path) -> Path:
    p = tmp_path / "img.png"
    assert cv2.imwrite(str(p), np.zeros((64, 96, 3), np.uint8))
    return p


def test_a_missing_checkpoint_is_one_line(tmp_path, image, capsys, clean_env):
    rc = main(["predict", "--config", "tiny", "--checkpoint", str(tmp_path / "nothere.pt"), "-o",
               str(tmp_path / "o.json"), str(image), "train.device=cpu", "model.backbone=hrnet_w18_small"])
    assert rc == 2 and str(tmp_path / "nothere.pt") in _one_error_line(capsys.readouterr().err)


def test_an_unreadable_checkpoint_is_one_line(tmp_path, image, capsys, clean_env):
    bad = tmp_path / "garbage.pt"
    bad.write_bytes(b"PK\x03\x04 not a checkpoint")
    rc = main(["predict", "--config", "tiny", "--checkpoint", str(bad), "-o", str(tmp_path / "o.json"), str(image),
               "train.device=cpu", "model.backbone=hrnet_w18_small"])
    assert rc == 2 and str(bad) in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o.json").exists()


def test_bad_data_is_one_line_naming_the_file(tmp_path, capsys, clean_env):
    root = tmp_path / "data"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"person_keypoints_{split}.json").write_text('{"images": [')
    rc = main(["train", "--config", "tiny", "--run-dir", str(tmp_path / "run"), "--quiet", f"data.root={root}",
               "train.device=cpu", "model.backbone=hrnet_w18_small"])
    assert rc == 2
    line = _one_error_line(capsys.readouterr().err)
    assert str(root / "annotations" / "person_keypoints_train.json") in line and "not valid JSON" in line


def test_evaluate_out_that_cannot_be_written_fails_before_any_work(tmp_path, capsys, clean_env):
    blocker = tmp_path / "a_file"
    blocker.write_text("mine")
    rc = main(["evaluate", "--config", "tiny", "--checkpoint", str(tmp_path / "w.pt"), "--out",
               str(blocker / "eval"), f"data.root={tmp_path / 'data'}"])
    assert rc == 2 and str(blocker) in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "data").exists()  # nothing generated, nothing evaluated
    assert blocker.read_text() == "mine"


# ---- make lab ----------------------------------------------------------------------------------------------------


def _lab_command(*variables: str, env: dict | None = None) -> str:
    """The jupyter command line `make lab` would run (a dry run: nothing is installed or started)."""
    if shutil.which("make") is None:
        skip_or_fail_in_ci("GNU make is not installed")
    run = subprocess.run(["make", "-n", "-o", ".venv/.installed", "lab", *variables], cwd=REPO, capture_output=True,
                         text=True, env={**os.environ, **(env or {})}, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _token(text: str) -> str:
    tokens = set(re.findall(r"--IdentityProvider\.token=([^\s\"']*)", text))
    urls = set(re.findall(r"/lab/tree/notebooks\?token=([^\s\"']*)", text))
    assert len(tokens) == 1 and tokens == urls, text  # the printed URL opens the server that is started
    return tokens.pop()


@pytest.mark.parametrize("given", [["LAB_TOKEN="], ["LAB_TOKEN= "], []])
def test_make_lab_never_turns_authentication_off(given, monkeypatch):
    """Measured: `make lab LAB_TOKEN=` started JupyterLab with an empty token, i.e. no authentication."""
    monkeypatch.delenv("LAB_TOKEN", raising=False)
    token = _token(_lab_command(*given))
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert _token(_lab_command(*given)) != token  # random each time
    assert re.fullmatch(r"[0-9a-f]{32}", _token(_lab_command(env={"LAB_TOKEN": ""})))  # empty in the environment


def test_make_lab_keeps_a_token_the_user_gives(monkeypatch):
    assert _token(_lab_command("LAB_TOKEN=s3cret")) == "s3cret"
    assert _token(_lab_command(env={"LAB_TOKEN": "fromenv"})) == "fromenv"
