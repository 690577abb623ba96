"""The kit's own configs, shipped as package data in ``boir_core/configs/``: where they are, their names, and
finding one by name (``coco_w32``, ``ablations/t4_full`` or just ``t4_full``)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

__all__ = ["configs_dir", "config_names", "find_config"]


def configs_dir() -> Path:
    """The kit's configs: ``boir_core/configs/`` inside the package (package data, so an installed wheel has
    them too). A checkout also reaches them as ``configs/``, a relative link to this folder."""
    return Path(__file__).resolve().parents[1] / "configs"


def config_names() -> list[str]:
    """Names of the kit's configs: the released settings, then ``ablations/<key>`` for Tables 4 and 7."""
    d = configs_dir()
    return [p.stem for p in sorted(d.glob("*.yaml"))] + [f"ablations/{p.stem}"
                                                          for p in sorted((d / "ablations").glob("*.yaml"))]


def find_config(name: str | os.PathLike) -> Optional[Path]:
    """The kit's config file called ``name`` (``coco_w32``, ``coco_w32.yaml``, ``ablations/t4_full`` or just
    ``t4_full``), or ``None``. A name with other folders than ``ablations/`` is no config name."""
    text = str(name)
    stem = text[:-5] if text.endswith(".yaml") else text[:-4] if text.endswith(".yml") else text
    if not stem or stem.startswith(("/", ".", "~")) or "\\" in stem:
        return None
    parts = stem.split("/")
    d = configs_dir()
    if len(parts) == 2 and parts[0] == "ablations":
        cands = [d / "ablations" / f"{parts[1]}.yaml"]
    elif len(parts) == 1:
        cands = [d / f"{stem}.yaml", d / "ablations" / f"{stem}.yaml"]
    else:
        return None
    return next((c for c in cands if c.is_file()), None)
