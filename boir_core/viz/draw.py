"""Drawing poses on images: :mod:`boir_core.engine.inference.draw` (``predict`` draws too, and the engine sits below
viz), re-exported here for the figures, the explorers and the notebooks."""
from __future__ import annotations

from ..engine.inference.draw import draw_poses, person_colour

__all__ = ["person_colour", "draw_poses"]
