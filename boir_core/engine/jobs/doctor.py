"""``boir doctor``: what this machine offers the kit, on one screen (or as JSON with ``--json``).

Versions (Python, PyTorch with its CUDA and cuDNN, onnxruntime with its execution providers, OpenVINO), the
CPU's instruction sets (AVX2, AVX-512, AMX, bf16) and what they mean for ``train.amp=fast``
(:func:`~.precision.cpu_has_native_bf16`), the GPUs with their memory, where the ImageNet weights
(``model.pretrained=timm``: the Hugging Face cache, :mod:`boir_core.model.pretrained`) and the data sets (each
paper config's ``data.root``, read from the working folder) are looked for and whether they are there, and
whether the Hugging Face hub is reachable: never contacted when ``HF_HUB_OFFLINE`` is set, else one request with
a short timeout (:data:`HUB_TIMEOUT_S`).

:func:`doctor` gathers the answers (its ``probe`` and ``cpuinfo`` are collaborators tests may pass);
:func:`format_doctor` prints them.
"""
from __future__ import annotations

import os
import platform
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from ...config import load_config
from ...data.profiles import get_profile
from ...model.pretrained import TIMM_WEIGHTS
from ..training.precision import cpu_has_native_bf16

__all__ = ["doctor", "format_doctor", "hub_status", "cpu_flags", "hub_cache_dir", "HUB_URL", "HUB_TIMEOUT_S",
           "CPU_FEATURES"]

HUB_URL = "https://huggingface.co"
HUB_TIMEOUT_S = 3.0
#: the instruction sets reported, each with the /proc/cpuinfo flags that mean it (any one of them)
CPU_FEATURES = {"avx2": ("avx2",), "avx512": ("avx512f",), "avx512_bf16": ("avx512_bf16",),
                "amx": ("amx_tile",), "amx_bf16": ("amx_bf16",)}
#: the configs whose data sets doctor looks for (the paper's three, and the demo's SynthCrowd)
DATA_CONFIGS = ("coco_w32", "crowdpose_w32", "ochuman_w32", "demo")
#: the backbones whose ImageNet weights the paper's configs use
PAPER_BACKBONES = ("hrnet_w32", "hrnet_w48")
NOT_INSTALLED = "not installed (pip install 'boir-kit[{extra}]')"


def _read(path: str) -> Optional[str]:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def cpu_flags(cpuinfo: Optional[str]) -> Optional[set[str]]:
    """The flags of the first processor in a /proc/cpuinfo text (None when there is none: not Linux)."""
    if not cpuinfo:
        return None
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86 / ARM
            return set(value.split())
    return None


def _cpu_model(cpuinfo: Optional[str]) -> str:
    for line in (cpuinfo or "").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu(cpuinfo: Optional[str]) -> dict[str, Any]:
    flags = cpu_flags(cpuinfo)
    features = {name: (None if flags is None else any(f in flags for f in names))
                for name, names in CPU_FEATURES.items()}
    native_bf16 = cpu_has_native_bf16()
    if native_bf16:
        fast = "bf16 autocast on this CPU (native bf16: AMX / AVX512-BF16), about 1.5x faster than fp32"
    else:
        fast = "fp32 on this CPU (no native bf16: PyTorch would emulate bf16, slower than fp32)"
    capability = None
    get_cap = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    if get_cap is not None:
        try:
            capability = str(get_cap())
        except Exception:  # an internal API: absent or failing on some builds
            capability = None
    return {"model": _cpu_model(cpuinfo), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            **features, "flags_source": "/proc/cpuinfo" if flags is not None else "not available",
            "torch_cpu_capability": capability, "native_bf16": native_bf16, "amp_fast": fast}


def _versions() -> dict[str, Any]:
    cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None
    out: dict[str, Any] = {"python": platform.python_version(), "python_executable": sys.executable,
                           "torch": torch.__version__, "cuda": torch.version.cuda, "cudnn": cudnn}
    try:
        import onnxruntime  # local import: an optional extra (onnx)

        out["onnxruntime"] = onnxruntime.__version__
        out["onnxruntime_providers"] = list(onnxruntime.get_available_providers())
    except ImportError:
        out["onnxruntime"], out["onnxruntime_providers"] = None, []
    try:
        import openvino  # local import: an optional extra (openvino)

        out["openvino"] = getattr(openvino, "__version__", None) or openvino.get_version()
    except ImportError:
        out["openvino"] = None
    return out


def _gpus() -> list[dict[str, Any]]:
    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out.append({"index": i, "name": p.name, "memory_bytes": int(p.total_memory),
                    "capability": f"{p.major}.{p.minor}", "bf16": bool(p.major >= 8)})
    return out


def hub_cache_dir() -> Path:
    """Where the Hugging Face hub (and so timm's ImageNet weights) caches files: ``$HF_HUB_CACHE``, else
    ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub`` (huggingface_hub's own answer when it is installed)."""
    # the environment as it is now (huggingface_hub reads it once, when it is imported)
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.environ[var]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    try:
        from huggingface_hub import constants  # local import: timm's dependency (its default honours XDG_CACHE_HOME)

        return Path(constants.HF_HUB_CACHE)
    except ImportError:
        return Path.home() / ".cache" / "huggingface" / "hub"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _probe_hub(url: str = HUB_URL, timeout: float = HUB_TIMEOUT_S) -> bool:
    """One HEAD request to the hub; True when it answers at all (any HTTP status), False on no answer."""
    try:
        urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout).close()
        return True
    except urllib.error.HTTPError:  # it answered
        return True
    except (OSError, ValueError):
        return False


def _weights(cache: Path) -> dict[str, Any]:
    out = {}
    for backbone in PAPER_BACKBONES:
        tag = TIMM_WEIGHTS[backbone]
        folder = cache / f"models--timm--{tag}"
        out[backbone] = {"timm": tag, "cache_folder": str(folder), "cached": folder.is_dir()}
    return out


def _data() -> list[dict[str, Any]]:
    out = []
    for name in DATA_CONFIGS:
        cfg = load_config(name)
        root = Path(cfg.data.root)
        prof = get_profile(cfg.data.dataset)
        splits = {}
        for split in dict.fromkeys((cfg.data.train_split, cfg.data.test_split)):
            splits[split] = prof.ann_file(root, split).is_file() and prof.image_dir(root, split).is_dir()
        out.append({"config": name, "dataset": cfg.data.dataset, "root": str(root),
                    "resolved": str(root.resolve()), "splits": splits})
    return out


def hub_status(probe: Callable[[], bool] = _probe_hub) -> dict[str, Any]:
    """Offline (``HF_HUB_OFFLINE`` set: ``probe`` is not called), or whether the hub answered ``probe``."""
    if _offline():
        return {"offline": True, "reachable": None, "url": HUB_URL,
                "note": "HF_HUB_OFFLINE is set: the hub is not contacted (only the local cache is read)"}
    reachable = bool(probe())
    return {"offline": False, "reachable": reachable, "url": HUB_URL,
            "note": (f"{HUB_URL} answered" if reachable else
                     f"{HUB_URL} did not answer within {HUB_TIMEOUT_S:g} s: model.pretrained=timm works only "
                     f"from the cache")}


def doctor(*, probe: Callable[[], bool] = _probe_hub, cpuinfo: Optional[str] = None) -> dict[str, Any]:
    """The machine's answers (module docstring) as a dict. ``probe`` asks the hub whether it answers (called
    only when ``HF_HUB_OFFLINE`` is not set); ``cpuinfo`` is the text of /proc/cpuinfo (read here when None)."""
    cpuinfo = cpuinfo if cpuinfo is not None else _read("/proc/cpuinfo")
    cache = hub_cache_dir()
    hub = hub_status(probe)
    return {"versions": _versions(), "cpu": _cpu(cpuinfo), "gpus": _gpus(),
            "imagenet_weights": {"hub_cache": str(cache), "backbones": _weights(cache)},
            "data": _data(), "working_folder": os.getcwd(), "hub": hub}


def _yes(v: Optional[bool]) -> str:
    return "?" if v is None else "yes" if v else "no"


def format_doctor(r: dict[str, Any]) -> str:
    """The answers on one screen."""
    v, cpu, hub = r["versions"], r["cpu"], r["hub"]
    ort = (f"{v['onnxruntime']} ({', '.join(v['onnxruntime_providers'])})" if v["onnxruntime"]
           else NOT_INSTALLED.format(extra="onnx"))
    lines = [
        "# boir doctor",
        f"python        {v['python']} ({v['python_executable']})",
        f"torch         {v['torch']}; CUDA {v['cuda'] or 'none (CPU build)'}; cuDNN {v['cudnn'] or 'none'}",
        f"onnxruntime   {ort}",
        f"openvino      {v['openvino'] or NOT_INSTALLED.format(extra='openvino')}",
        f"cpu           {cpu['model']}: {cpu['cores']} cores, torch uses {cpu['torch_threads']} threads"
        + (f"; torch kernels: {cpu['torch_cpu_capability']}" if cpu["torch_cpu_capability"] else ""),
        f"instructions  AVX2 {_yes(cpu['avx2'])}, AVX-512 {_yes(cpu['avx512'])}, AVX512-BF16 "
        f"{_yes(cpu['avx512_bf16'])}, AMX {_yes(cpu['amx'])} (AMX-BF16 {_yes(cpu['amx_bf16'])}; from "
        f"{cpu['flags_source']})",
        f"amp=fast      {cpu['amp_fast']}",
    ]
    if r["gpus"]:
        for g in r["gpus"]:
            lines.append(f"gpu {g['index']}         {g['name']}, {g['memory_bytes'] / 2**30:.1f} GiB, compute "
                         f"{g['capability']}{', bf16' if g['bf16'] else ''} (amp=auto/fast: fp16 + GradScaler)")
    else:
        lines.append("gpus          none visible to torch (training and evaluation run on the CPU)")
    w = r["imagenet_weights"]
    cached = ", ".join(f"{b['timm']} {'cached' if b['cached'] else 'not cached'}" for b in w["backbones"].values())
    lines.append(f"imagenet      model.pretrained=timm reads {w['hub_cache']}: {cached}")
    lines.append(f"hub           {'offline' if hub['offline'] else 'reachable' if hub['reachable'] else 'unreachable'}"
                 f": {hub['note']}")
    lines.append(f"data          read from the working folder {r['working_folder']}:")
    for d in r["data"]:
        present = ", ".join(f"{s} {'present' if ok else 'absent'}" for s, ok in d["splits"].items())
        lines.append(f"  {d['config']:<14}{d['dataset']:<11} {d['root']}: {present}")
    return "\n".join(lines)
