"""Inference backends: who runs the network while :func:`boir_core.engine.inference.decode.decode` decodes.

``test.backend`` chooses one (:class:`boir_core.engine.inference.predictor.Predictor` reads it for ``predict``,
``evaluate``, ``profile`` and the notebooks, through :func:`make_runner`):

* ``exact``: PyTorch eager in fp32 on the network as trained: no BatchNorm folding, the network's own
  instance head, contiguous (NCHW) tensors. It gives the release's poses; an unset ``test.backend`` means it
  wherever numbers are reported (``evaluate``, ``reproduce``, the notebooks' metrics;
  docs/inference.md#exact-and-fast-inference);
* ``torch`` (what an unset ``test.backend`` means for ``predict`` and ``profile``): PyTorch, with eval-only
  speed-ups: BatchNorm folded into the convolutions (:mod:`boir_core.model.fold`), the instance head
  computed for all people of all views in a few matrix products (:mod:`boir_core.model.fast_instance`),
  channels-last (NHWC) tensors on a CPU, ``torch.inference_mode``. Equal up to float rounding, which can
  flip a near-tie in an argmax;
* ``onnxruntime``: the two ONNX graphs of :mod:`boir_core.engine.inference.export`, exported in memory from the
  loaded weights and run by ONNX Runtime (``pip install 'boir-kit[onnx]'``);
* ``openvino``: the same graphs run by OpenVINO in fp32 (``pip install 'boir-kit[openvino]'``);
* ``onnxruntime_int8``: ONNX Runtime with the dense graph quantised to INT8 (:mod:`boir_core.engine.inference.quantize`,
  calibrated on ``test.calibration_images`` images of the train split). The fastest on a CPU and not exact:
  its AP change is measured (docs/inference.md#int8-post-training-quantisation).

:func:`make_runner` builds a backend's runner through its entry in :data:`RUNNERS`: a builder that receives
one :class:`RunnerContext` (the loaded network, the config, the caller's :class:`RunnerOptions`) and takes
what it needs from it (the INT8 builder reads its calibration images from the config), the pip extra that
installs its package and the options it takes. A new backend is its name in ``config/registry.py``
(:data:`BACKENDS`) and, here, its runner class and its entry (docs/architecture.md#where-to-add-things).

Every runner is a :class:`Runner`: two calls, both on torch tensors, so the decoding around them is shared.
``dense(images)`` with ``images`` [V, 3, H', W'] (view 0 the image, views 1.. its mirror) returns the
aligned features [V, C_b, H, W] and the center logits [V, 1, H, W] (:func:`boir_core.model.views.dense_views`,
the one place the mirrored features are flipped back); ``instances(features, coords)`` returns the instance
logits [V·n, K, H, W] of every center (y, x) in every view, view-major. :func:`as_runner` turns a plain
network into the ``exact`` runner, so :func:`~boir_core.engine.inference.decode.decode` always runs a runner.
"""
from __future__ import annotations

import abc
import copy
import importlib
import json
import tempfile
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn as nn

from ...config import BACKENDS, Config
from ...model.fast_instance import views_heatmaps
from ...model.fold import fold_batchnorm
from ...model.views import dense_views
from .export import onnx_graphs
from .quantize import calibration_inputs, int8_graphs

__all__ = ["BACKENDS", "RUNNERS", "EXTRAS", "Backend", "RunnerContext", "RunnerOptions", "Runner", "make_runner",
           "as_runner", "TorchSettings", "TorchRunner", "OnnxRuntimeRunner", "OnnxRuntimeInt8Runner", "OpenVinoRunner",
           "BackendUnavailable"]

#: what a plain network provides (CONTRIBUTING.md): :func:`as_runner` runs it as the ``exact`` runner
NETWORK_CALLS = ("features", "center_logits", "instance_heatmaps")


class BackendUnavailable(ImportError):
    """The chosen backend's package is not installed; the message names the pip extra."""


def _require(module: str, backend: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        extra = RUNNERS[backend].extra
        raise BackendUnavailable(
            f"test.backend={backend} needs the Python package {module!r}, which is not installed ({e}). "
            f"Install it with: pip install 'boir-kit[{extra}]' (or pip install -e '.[{extra}]' "
            f"in a clone)") from None


@dataclass(frozen=True)
class RunnerOptions:
    """What a caller may ask of a runner beyond the config (:func:`make_runner`; each backend takes only the
    ones its :class:`Backend` entry names, others are an error): ``threads``, the CPU threads one call may use
    (None: torch's); ``profiling``, the runtime's own per-node timer (read by ``layer_times``); ``calibration``,
    the network inputs [V, 3, H', W'] INT8 reads its activation ranges from (None: the config's
    ``test.calibration_images`` train-split images, :func:`~boir_core.engine.inference.quantize.calibration_inputs`).
    """

    threads: int | None = None
    profiling: bool = False
    calibration: Sequence[np.ndarray] | None = None

    def given(self) -> list[str]:
        """The names of the options set to other than their defaults."""
        return [f.name for f in fields(self) if getattr(self, f.name) is not f.default]


@dataclass(frozen=True)
class RunnerContext:
    """What a backend's builder receives, and takes what it needs from: the loaded inference ``model`` (it
    carries its device), the config ``cfg`` (None where the caller has none: a builder that needs it says so)
    and the caller's ``options``."""

    model: nn.Module
    cfg: Config | None = None
    options: RunnerOptions = RunnerOptions()

    @property
    def device(self) -> torch.device:
        """Where the network is (the CPU for a stand-in without parameters)."""
        return _model_device(self.model)


def _threads(threads: int | None) -> int:
    return int(threads) if threads else torch.get_num_threads()


class Runner(abc.ABC):
    """What :func:`~boir_core.engine.inference.decode.decode` runs the network through (module docstring).

    Attributes: ``name`` (the ``test.backend`` it implements), ``variant`` (what exactly runs, for reports),
    ``device`` (where ``dense`` wants its input and returns its output), ``threads`` (CPU threads one call may
    use). A new backend subclasses this, implements the two calls and gets an entry in :data:`RUNNERS` (its
    builder: usually a ``from_context`` class method, as the graph runners have).
    """

    name: str
    variant: str
    device: torch.device
    threads: int

    @abc.abstractmethod
    def dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images [V, 3, H', W'] → (aligned features [V, C_b, H, W], center logits [V, 1, H, W], fp32)."""

    @abc.abstractmethod
    def instances(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """features [V, C_b, H, W] (from ``dense``), coords [n, 2] (y, x) → logits [V·n, K, H, W], view-major."""


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):  # a network without parameters (a stand-in): the CPU
        return torch.device("cpu")


@dataclass(frozen=True)
class TorchSettings:
    """How a :class:`TorchRunner` runs the network.

    The three eval-only speed-ups, each of which can be switched off (the benchmark times each): ``fold_bn``
    (BatchNorm folded into the convolutions), ``fast_instance`` (the instance head in a few matrix products),
    ``channels_last`` (NHWC tensors; None: on for a CPU model). All three off is plain eager (in
    ``inference_mode``, :meth:`plain`), what the ``exact`` backend runs. For GPUs: ``half`` runs the network in
    float16 (decoding stays fp32), ``mode="compile"`` wraps both calls in ``torch.compile`` (dynamic shapes,
    ``compile_backend``), ``mode="cudagraphs"`` captures one CUDA graph per input shape and number of people and
    replays it (CUDA only).
    """

    fold_bn: bool = True
    fast_instance: bool = True
    channels_last: bool | None = None
    half: bool = False
    mode: str = "eager"
    compile_backend: str = "inductor"

    @classmethod
    def plain(cls) -> "TorchSettings":
        """No speed-up: the network as it is, fp32, NCHW, its own instance head (the ``exact`` backend's)."""
        return cls(fold_bn=False, fast_instance=False, channels_last=False)


class TorchRunner(Runner):
    """PyTorch on the model's device, run as ``settings`` say (:class:`TorchSettings`; default: the ``torch``
    backend, every speed-up on). ``name`` is the ``test.backend`` it stands for (:meth:`exact`: ``exact``)."""

    MODES = ("eager", "compile", "cudagraphs")

    def __init__(self, model: nn.Module, settings: TorchSettings = TorchSettings(), *, name: str = "torch"):
        mode, fold_bn, half = settings.mode, settings.fold_bn, settings.half
        if mode not in self.MODES:
            raise ValueError(f"mode={mode!r} is not one of {list(self.MODES)}")
        self.name = name
        self.settings = settings
        self.device = _model_device(model)
        if mode == "cudagraphs" and self.device.type != "cuda":
            raise ValueError(f"mode='cudagraphs' needs the model on a CUDA device, it is on {self.device}")
        channels_last = settings.channels_last
        if channels_last is None:  # NHWC convolutions: ~2x faster on a CPU (oneDNN), see bench_inference
            channels_last = self.device.type == "cpu"
        if isinstance(model, nn.Module):  # (a stand-in network with the three calls need not be a module)
            model = model.eval()
        self.folded = 0
        if fold_bn:
            probe = torch.zeros(1, 3, 64, 64, device=self.device)
            model, self.folded = fold_batchnorm(model, lambda m: m.center_logits(m.features(probe)))
        if half or channels_last:
            model = copy.deepcopy(model) if not fold_bn else model  # never change the caller's model
            if half:
                model = model.half()
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.fast_instance = settings.fast_instance
        self.channels_last = channels_last
        self.dtype = torch.float16 if half else torch.float32
        self.mode = mode
        self._graphs: dict = {}
        self._dense = self._dense_impl
        self._inst = self._instances_impl
        if mode == "compile":
            self._dense = torch.compile(self._dense_impl, dynamic=True, backend=settings.compile_backend)
            self._inst = torch.compile(self._instances_impl, dynamic=True, backend=settings.compile_backend)
        parts = [v for v, on in (("fold_bn", fold_bn), ("fast_instance", settings.fast_instance),
                                 ("channels_last", channels_last), ("fp16", half)) if on]
        self.variant = "+".join(parts) or "eager"
        if mode != "eager":
            self.variant += f" [{mode}]"

    @classmethod
    def exact(cls, model: nn.Module) -> "TorchRunner":
        """The ``exact`` backend: eager fp32 on the network as it is (no folding, its own instance head, NCHW),
        the path that gives the release's poses."""
        return cls(model, TorchSettings.plain(), name="exact")

    @property
    def threads(self) -> int:
        return torch.get_num_threads()

    # the two network calls, as plain functions of tensors (what compile / CUDA graphs wrap)
    def _dense_impl(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return dense_views(self.model, x)

    def _instances_impl(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        if self.fast_instance:
            return views_heatmaps(self.model.kpt_head, features, coords)
        v, n = features.shape[0], coords.shape[0]
        imgid = torch.arange(v, device=features.device).repeat_interleave(n)
        return self.model.instance_heatmaps(features, coords.repeat(v, 1), imgid)

    def _graphed(self, name: str, fn, *inputs: torch.Tensor):
        key = (name,) + tuple(tuple(t.shape) for t in inputs)
        if key not in self._graphs:
            static_in = [t.clone() for t in inputs]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):  # warm-up outside the graph (allocator, cuDNN algorithm choice)
                    fn(*static_in)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = fn(*static_in)
            self._graphs[key] = (graph, static_in, static_out)
        graph, static_in, static_out = self._graphs[key]
        for dst, src in zip(static_in, inputs):
            dst.copy_(src)
        graph.replay()
        if isinstance(static_out, tuple):
            return tuple(o.clone() for o in static_out)
        return static_out.clone()

    def dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            x = images.to(self.device, self.dtype)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.mode == "cudagraphs":
                feats, center = self._graphed("dense", self._dense_impl, x)
            else:
                feats, center = self._dense(x)
            return feats.contiguous(), center.float().contiguous()

    def instances(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            coords = coords.to(self.device)
            if self.mode == "cudagraphs":
                out = self._graphed("instance", self._instances_impl, features, coords)
            else:
                out = self._inst(features, coords)
            return out.float()


class _GraphRunner(Runner):
    """Shared by the ONNX Runtime and OpenVINO runners: tensors in, tensors out, on the CPU."""

    device = torch.device("cpu")

    @classmethod
    def from_context(cls, ctx: RunnerContext) -> "_GraphRunner":
        """A graph backend's builder: the graphs exported from ``ctx.model``, its threads and profiling."""
        return cls(ctx.model, threads=ctx.options.threads, profiling=ctx.options.profiling)

    def dense(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats, center = self._run("dense", {"images": images.detach().cpu().float().contiguous().numpy()})
        return torch.from_numpy(feats), torch.from_numpy(center)

    def instances(self, features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        (out,) = self._run("instance", {"features": features.detach().cpu().contiguous().numpy(),
                                        "coords": coords.detach().cpu().to(torch.int64).contiguous().numpy()})
        return torch.from_numpy(out)


def _graphs(model: nn.Module) -> dict[str, bytes]:
    model = model.eval()
    if next(model.parameters()).device.type != "cpu":
        model = copy.deepcopy(model).cpu()
    return onnx_graphs(model)


class OnnxRuntimeRunner(_GraphRunner):
    """ONNX Runtime (CPU execution provider) on the two exported graphs; ``threads`` defaults to torch's."""

    name = "onnxruntime"

    def __init__(self, model: nn.Module, *, threads: int | None = None, graphs: dict[str, bytes] | None = None,
                 profiling: bool = False):
        ort = _require("onnxruntime", "onnxruntime")
        graphs = graphs or _graphs(model)
        opts = ort.SessionOptions()
        self.threads = _threads(threads)  # the threads one call may run nodes on
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.profiling = profiling
        if profiling:  # ONNX Runtime's own per-node timer (a JSON trace, read by layer_times)
            self._trace_dir = tempfile.TemporaryDirectory(prefix="boir_ort_trace_")
            opts.enable_profiling = True
            opts.profile_file_prefix = str(Path(self._trace_dir.name) / "trace")
        self.sessions = {k: ort.InferenceSession(v, opts, providers=["CPUExecutionProvider"])
                         for k, v in graphs.items()}
        self.variant = f"onnxruntime {ort.__version__}"

    def _run(self, graph: str, feeds: dict[str, Any]):
        return self.sessions[graph].run(None, feeds)

    def layer_times(self, graph: str) -> dict[str, tuple[float, str]]:
        """{node name: (seconds, operator)} of the last run of ``graph`` (``"dense"`` or ``"instance"``), from
        ONNX Runtime's trace; needs ``profiling=True`` and ends that graph's profiling."""
        if not self.profiling:
            raise RuntimeError("layer_times needs an OnnxRuntimeRunner built with profiling=True")
        trace = Path(self.sessions[graph].end_profiling())
        events = json.loads(trace.read_text())
        trace.unlink()
        runs = [e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"]
        if not runs:
            raise RuntimeError(f"the {graph} graph has not run since profiling started")
        lo, hi = runs[-1]["ts"], runs[-1]["ts"] + runs[-1]["dur"]
        out: dict[str, tuple[float, str]] = {}
        for e in events:
            if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time") and lo <= e["ts"] <= hi:
                name = e["name"][: -len("_kernel_time")]
                out[name] = (out.get(name, (0.0, ""))[0] + e["dur"] / 1e6, e.get("args", {}).get("op_name", ""))
        return out


class OnnxRuntimeInt8Runner(OnnxRuntimeRunner):
    """ONNX Runtime on the graphs with the dense one quantised to INT8 from ``calibration`` (network inputs
    [V, 3, H', W'], :func:`boir_core.engine.inference.quantize.calibration_inputs`); the instance graph in fp32."""

    name = "onnxruntime_int8"

    def __init__(self, model: nn.Module, *, calibration, threads: int | None = None, reduce_range: bool = True,
                 profiling: bool = False):
        _require("onnxruntime", "onnxruntime_int8")
        super().__init__(model, threads=threads, profiling=profiling,
                         graphs=int8_graphs(_graphs(model), calibration, reduce_range=reduce_range))
        self.variant += f" int8 (dense graph, {len(calibration)} calibration images)"

    @classmethod
    def from_context(cls, ctx: RunnerContext) -> "OnnxRuntimeInt8Runner":
        """The ``onnxruntime_int8`` backend's builder: it calibrates on ``ctx.options.calibration`` when given,
        else on the config's ``test.calibration_images`` train-split images
        (:func:`~boir_core.engine.inference.quantize.calibration_inputs`), read once ONNX Runtime is known to be
        installed."""
        _require("onnxruntime", cls.name)
        calibration = ctx.options.calibration
        if calibration is None:
            if ctx.cfg is None:
                raise ValueError(f"test.backend={cls.name} needs calibration inputs: make_runner(..., cfg=cfg) reads "
                                 "test.calibration_images train images of the config (Predictor passes its config), "
                                 "or make_runner(..., options=RunnerOptions(calibration=...)) names them")
            calibration = calibration_inputs(ctx.cfg)
        return cls(ctx.model, calibration=calibration, threads=ctx.options.threads,
                   profiling=ctx.options.profiling)


class OpenVinoRunner(_GraphRunner):
    """OpenVINO (CPU plug-in, fp32 inference precision: no bf16 even on AMX CPUs) on the two graphs."""

    name = "openvino"

    def __init__(self, model: nn.Module, *, threads: int | None = None, graphs: dict[str, bytes] | None = None,
                 profiling: bool = False):
        ov = _require("openvino", "openvino")
        graphs = graphs or _graphs(model)
        core = ov.Core()
        self.threads = _threads(threads)  # the threads one call may run nodes on
        cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": self.threads,
               "PERFORMANCE_HINT": "LATENCY"}
        self.profiling = profiling
        if profiling:  # OpenVINO's per-node counters (read by layer_times)
            cfg["PERF_COUNT"] = True
        self.compiled = {}
        with tempfile.TemporaryDirectory() as tmp:  # OpenVINO reads ONNX from a file
            for k, data in graphs.items():
                path = Path(tmp) / f"{k}.onnx"
                path.write_bytes(data)
                self.compiled[k] = core.compile_model(core.read_model(str(path)), "CPU", cfg)
        self.requests = {k: c.create_infer_request() for k, c in self.compiled.items()}
        self.variant = "openvino " + str(getattr(ov, "__version__", "")).split("-")[0]

    def _run(self, graph: str, feeds: dict[str, Any]):
        req = self.requests[graph]
        req.infer(feeds)
        return [req.get_output_tensor(i).data.copy() for i in range(len(self.compiled[graph].outputs))]

    def layer_times(self, graph: str) -> dict[str, tuple[float, str]]:
        """{node name: (seconds, kernel)} of the last run of ``graph``; the kernel is OpenVINO's exec type,
        which names the instruction set it runs (e.g. ``brgconv_avx512_FP32``). Needs ``profiling=True``."""
        if not self.profiling:
            raise RuntimeError("layer_times needs an OpenVinoRunner built with profiling=True")
        out: dict[str, tuple[float, str]] = {}
        for info in self.requests[graph].get_profiling_info():
            if str(info.status).endswith("EXECUTED"):
                out[info.node_name] = (info.real_time.total_seconds(), info.exec_type)
        return out


@dataclass(frozen=True)
class Backend:
    """One ``test.backend``'s entry in :data:`RUNNERS`: ``build`` makes its runner from a :class:`RunnerContext`,
    taking what it needs from it; ``extra`` is the pip extra that installs its package (None: a core
    dependency); ``takes`` names the :class:`RunnerOptions` it honours (any other one given is an error)."""

    build: Callable[[RunnerContext], Runner]
    extra: str | None = None
    takes: frozenset[str] = frozenset()


_GRAPH_OPTIONS = frozenset({"threads", "profiling"})

#: Every backend of :data:`BACKENDS`, in the same order (checked on import), and how its runner is built.
RUNNERS: dict[str, Backend] = {
    "exact": Backend(lambda ctx: TorchRunner.exact(ctx.model)),
    "torch": Backend(lambda ctx: TorchRunner(ctx.model)),
    "onnxruntime": Backend(OnnxRuntimeRunner.from_context, extra="onnx", takes=_GRAPH_OPTIONS),
    "openvino": Backend(OpenVinoRunner.from_context, extra="openvino", takes=_GRAPH_OPTIONS),
    "onnxruntime_int8": Backend(OnnxRuntimeInt8Runner.from_context, extra="onnx",
                                takes=_GRAPH_OPTIONS | {"calibration"}),
}
#: the pip extra that installs each optional backend (read from :data:`RUNNERS`)
EXTRAS = {name: b.extra for name, b in RUNNERS.items() if b.extra is not None}


def _check_agrees_with_registry(runners: dict[str, Backend], names: tuple[str, ...]) -> None:
    if tuple(runners) != tuple(names):
        raise RuntimeError(f"boir_core.engine.inference.backends.RUNNERS ({list(runners)}) disagrees with "
                           f"boir_core.config.registry.BACKENDS ({list(names)}): add or change a backend in both")


_check_agrees_with_registry(RUNNERS, BACKENDS)


def make_runner(backend: str, model: nn.Module, *, cfg: Config | None = None,
                options: RunnerOptions = RunnerOptions()) -> Runner:
    """The runner of ``backend`` (one of :data:`BACKENDS`) for a loaded inference ``model`` (a plain network:
    ``exact`` runs it as it is): its :data:`RUNNERS` entry's builder, given ``model``, ``cfg`` (the config a
    backend may read, e.g. INT8's calibration images) and ``options`` (only those the backend takes)."""
    entry = RUNNERS.get(backend)
    if entry is None:
        raise ValueError(f"test.backend={backend!r} is not one of {list(BACKENDS)}")
    refused = [o for o in options.given() if o not in entry.takes]
    if refused:
        takes = f"it takes {sorted(entry.takes)}" if entry.takes else "it takes none"
        raise ValueError(f"test.backend={backend} takes no options {refused} ({takes}; a TorchRunner's settings "
                         f"are its own: TorchRunner(model, TorchSettings(...)))")
    return entry.build(RunnerContext(model, cfg, options))


def as_runner(net: Runner | nn.Module) -> Runner:
    """``net`` itself when it is a :class:`Runner`; a plain network (anything with :data:`NETWORK_CALLS`,
    CONTRIBUTING.md; a module is switched to eval mode) as the ``exact`` runner."""
    if isinstance(net, Runner):
        return net
    if all(callable(getattr(net, a, None)) for a in NETWORK_CALLS):
        return TorchRunner.exact(net)
    raise TypeError(f"decode needs a backends.Runner or a network with {', '.join(NETWORK_CALLS)}, got "
                    f"{type(net).__name__}")
