"""``boir doctor``: checked against this machine's own answers (/proc/cpuinfo, torch, onnxruntime), a data
folder and a hub cache made here, and a hub probe passed in (the hub is never contacted by the tests)."""
from __future__ import annotations

import json
import platform
import socket
from pathlib import Path

import pytest
import torch

from boir_core.__main__ import main
from boir_core.engine.jobs.doctor import _probe_hub, cpu_flags, doctor, format_doctor, hub_status
from boir_core.engine.training.precision import cpu_has_native_bf16

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _flags_by_hand() -> set[str] | None:
    p = Path("/proc/cpuinfo")
    if not p.exists():
        return None
    for line in p.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return None


def test_doctor_json_states_this_machines_real_answers(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "hub" / "models--timm--hrnet_w32.ms_in1k").mkdir(parents=True)  # as timm's download leaves it
    work = tmp_path / "work"
    (work / "data" / "coco" / "annotations").mkdir(parents=True)
    (work / "data" / "coco" / "annotations" / "coco_val.json").write_text("{}")
    (work / "data" / "coco" / "images" / "val2017").mkdir(parents=True)
    monkeypatch.chdir(work)
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    v = r["versions"]
    assert v["torch"] == torch.__version__ and v["python"] == platform.python_version()
    assert v["cuda"] == torch.version.cuda
    try:
        import onnxruntime
    except ImportError:
        assert v["onnxruntime"] is None
    else:
        assert v["onnxruntime"] == onnxruntime.__version__
        assert v["onnxruntime_providers"] == onnxruntime.get_available_providers()
    flags = _flags_by_hand()
    cpu = r["cpu"]
    if flags is not None:
        assert cpu["avx2"] == ("avx2" in flags) and cpu["avx512"] == ("avx512f" in flags)
        assert cpu["amx"] == ("amx_tile" in flags) and cpu["avx512_bf16"] == ("avx512_bf16" in flags)
    assert cpu["native_bf16"] == cpu_has_native_bf16()
    assert ("bf16 autocast" in cpu["amp_fast"]) == cpu_has_native_bf16()
    assert len(r["gpus"]) == (torch.cuda.device_count() if torch.cuda.is_available() else 0)
    assert r["hub"] == {**r["hub"], "offline": True, "reachable": None}
    w = r["imagenet_weights"]
    assert w["hub_cache"] == str(tmp_path / "hub")
    assert w["backbones"]["hrnet_w32"]["cached"] and not w["backbones"]["hrnet_w48"]["cached"]
    coco = next(d for d in r["data"] if d["config"] == "coco_w32")
    assert coco["root"] == "data/coco" and coco["splits"] == {"train": False, "val": True}
    assert Path(coco["resolved"]) == work / "data" / "coco"


def test_doctor_prints_one_screen(monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert main(["doctor"]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 25 and max(len(line) for line in out.splitlines()) <= 160
    for head in ("python", "torch", "onnxruntime", "openvino", "instructions", "amp=fast", "imagenet", "hub",
                 "data"):
        assert any(line.startswith(head) for line in out.splitlines()), head
    assert torch.__version__ in out and "hub           offline" in out


def test_the_hub_is_asked_only_when_not_offline(monkeypatch):
    calls = []

    def probe():
        calls.append(1)
        return False

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub_status(probe)["offline"] and not calls
    monkeypatch.delenv("HF_HUB_OFFLINE")
    hub = hub_status(probe)
    assert calls == [1] and hub["offline"] is False and hub["reachable"] is False
    assert hub_status(lambda: True)["reachable"] is True
    r = doctor(probe=probe, cpuinfo="flags\t: fpu sse avx2 amx_tile\n")
    assert calls == [1, 1] and "hub           unreachable" in format_doctor(r)
    assert (r["cpu"]["avx2"], r["cpu"]["amx"], r["cpu"]["avx512"]) == (True, True, False)


def test_the_probe_reports_no_answer_without_waiting_and_the_flags_parser():
    with socket.socket() as s:  # a port nobody listens on: refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert _probe_hub(f"http://127.0.0.1:{port}", timeout=1.0) is False
    text = "processor\t: 0\nmodel name\t: X\nflags\t\t: fpu sse avx2 amx_tile\n\nprocessor\t: 1\nflags\t: fpu\n"
    assert cpu_flags(text) == {"fpu", "sse", "avx2", "amx_tile"}
    assert cpu_flags("") is None and cpu_flags("model name: X") is None

