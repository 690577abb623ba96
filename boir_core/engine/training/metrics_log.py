"""The training log: ``<run_dir>/metrics.jsonl`` (one JSON line per logged iteration and per epoch) and
TensorBoard events in ``<run_dir>/tb/`` when tensorboard is installed."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...io import atomic_write_text

__all__ = ["MetricsLog"]


class MetricsLog:
    """metrics.jsonl (+ TensorBoard when installed), written by rank 0 only."""

    def __init__(self, run_dir: Path, enabled: bool):
        self.enabled = enabled
        self.path = run_dir / "metrics.jsonl"
        self.tb = None
        if enabled:
            try:
                # optional dependency: the tensorboard package (and its slow import) only when installed
                from torch.utils.tensorboard import SummaryWriter

                self.tb = SummaryWriter(str(run_dir / "tb"))
            except Exception:
                self.tb = None

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            step = record.get("iter", record.get("epoch", 0))
            for k, v in record.items():
                if isinstance(v, (int, float)) and k not in ("iter", "epoch"):
                    self.tb.add_scalar(f"{record['type']}/{k}", v, step)

    def keep_until(self, step: int) -> int:
        """A resumed run continues from its checkpoint at ``step``: drop the records of later steps (logged by
        the interrupted run after its last checkpoint, and repeated now) and any line cut short by a kill, so
        the log stays one run, each step once. Returns how many lines were dropped."""
        if not self.enabled or not self.path.is_file():
            return 0
        lines = self.path.read_text().splitlines()
        kept = []
        for line in lines:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if isinstance(rec, dict) and int(rec.get("iter", 0)) <= step:
                kept.append(line)
        if len(kept) != len(lines):
            atomic_write_text(self.path, "".join(x + "\n" for x in kept))
        return len(lines) - len(kept)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
