"""``boir convert-checkpoint --trust FILE``: rewrite a trusted weights or training-state file that the kit refuses
(it holds Python objects that only a full unpickling rebuilds) as data the kit reads with ``weights_only=True``
(docs/model.md#loading-is-data-never-code).

This is the only place in the kit that unpickles a file fully, and only because the user said ``--trust``:
a full unpickling runs any code the file carries. The result keeps every tensor and plain value (numbers,
strings, ``None``, lists / tuples / dicts of them); numpy arrays become tensors (numpy scalars numbers), an
older kit's training state gets its random states in the current layout, and any other Python object is left
out and listed (it is not weights). The result is checked to load as data before it is written, atomically.
"""
from __future__ import annotations

import io
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ...model import CheckpointError
from .checkpointing import atomic_torch_save, upgrade_training_state

__all__ = ["ConvertReport", "convert_checkpoint", "default_converted_path"]

_PLAIN = (str, bytes, int, float, bool, complex, type(None), torch.dtype, torch.device, torch.Size)


@dataclass
class ConvertReport:
    """What :func:`convert_checkpoint` did: ``source`` → ``output``; ``converted``: where numpy values became
    tensors / numbers; ``dropped``: where Python objects were left out (path in the file → type)."""

    source: Path
    output: Path
    converted: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.source} -> {self.output} (reads as data: weights_only=True)"]
        lines += [f"  note: {n}" for n in self.notes]
        if self.converted:
            lines.append(f"  numpy values as tensors / numbers: {_fmt(self.converted)}")
        if self.dropped:
            lines.append("  left out (Python objects, not weights): "
                         + _fmt([f"{k} ({t})" for k, t in self.dropped.items()]))
        return "\n".join(lines)


def _fmt(items: list[str], n: int = 8) -> str:
    return ", ".join(items[:n]) + (f", ... ({len(items)} in all)" if len(items) > n else "")


def default_converted_path(path: str | os.PathLike) -> Path:
    """``<stem>.safe.pt`` beside ``path``."""
    p = Path(path)
    return p.with_name(f"{p.stem}.safe.pt")


def _plain(obj: Any, where: str, report: ConvertReport) -> Any:
    """``obj`` with only tensors and plain values; ``where``: its path in the file, for the report."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        report.converted.append(where)
        if obj.dtype == object:
            return [_plain(x, f"{where}[{i}]", report) for i, x in enumerate(obj.tolist())]
        try:
            return torch.from_numpy(np.ascontiguousarray(obj).copy())
        except TypeError:  # a dtype torch has no tensor for (strings, ...): its values
            return obj.tolist()
    if isinstance(obj, np.generic):
        report.converted.append(where)
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, dict):  # an OrderedDict stays one (a type a weights-only load accepts); others: dict
        out: dict = OrderedDict() if isinstance(obj, OrderedDict) else {}
        for k, v in obj.items():
            key = k if isinstance(k, (str, int, float, bool, type(None))) else str(k)
            item = _plain(v, f"{where}[{k!r}]", report)
            if item is not _DROPPED:
                out[key] = item
        return out
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = [_plain(v, f"{where}[{i}]", report) for i, v in enumerate(obj)]
        items = [v for v in items if v is not _DROPPED]
        return tuple(items) if isinstance(obj, tuple) else items  # a namedtuple becomes a tuple, a set a list
    report.dropped[where] = f"{type(obj).__module__}.{type(obj).__qualname__}"
    return _DROPPED


_DROPPED = object()


def convert_checkpoint(path: str | os.PathLike, output: str | os.PathLike | None = None, *,
                       trust: bool = False) -> ConvertReport:
    """Rewrite the trusted file ``path`` as data the kit reads (``weights_only=True``) into ``output`` (default
    ``<stem>.safe.pt`` beside it; ``output`` may be ``path`` itself: replaced atomically). Refuses unless
    ``trust=True``: reading the file runs any code it carries. Returns a :class:`ConvertReport`."""
    path = Path(path)
    if not trust:
        raise CheckpointError(
            f"convert-checkpoint {path}: not converted: reading it needs a full unpickling, which runs any code the "
            f"file carries. Pass --trust only if you trust where the file came from (e.g. you wrote it yourself "
            f"with an older BoIR Kit): boir convert-checkpoint --trust {path}")
    if not path.is_file():
        raise CheckpointError(f"convert-checkpoint: file not found: {path}")
    out = Path(output) if output is not None else default_converted_path(path)
    if out.is_dir():
        raise CheckpointError(f"convert-checkpoint: the output {out} is a folder; name a file (-o FILE.pt)")
    report = ConvertReport(source=path, output=out)
    try:
        # the one full unpickling in the kit: the user vouched for the file (--trust)
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise CheckpointError(f"convert-checkpoint: {path} cannot be read as a PyTorch file "
                              f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    upgraded = upgrade_training_state(obj)
    if upgraded is not obj:
        report.notes.append(f"training state of an older kit ({obj.get('format')}) in the current layout "
                            f"({upgraded['format']}): random states as plain values")
    plain = _plain(upgraded, "file", report)
    if plain is _DROPPED:
        raise CheckpointError(f"convert-checkpoint: {path} holds a {report.dropped['file']}, no weights or data "
                              f"to keep")
    buf = io.BytesIO()
    torch.save(plain, buf)
    buf.seek(0)
    try:  # what is written must read back as data, or nothing is written
        torch.load(buf, map_location="cpu", weights_only=True)
    except Exception as e:  # pragma: no cover - _plain keeps only types a weights-only load accepts
        raise CheckpointError(f"convert-checkpoint: {path}: the converted data would still not load as data "
                              f"({type(e).__name__}); nothing written") from None
    atomic_torch_save(plain, out)
    return report
