"""A matplotlib figure as PNG bytes (:func:`figure_png`): what every explorer (:class:`~.explorers.Explorer`,
the formula explorers too) and widget (:mod:`.widgets`) shows in its ``Image`` widget. It sits below them all, so
that :mod:`.explorers` can build on :mod:`.widgets` (the frozen-embedding explorer on :func:`~.widgets.explore_terms`)
without an import circle; :mod:`.explorers` re-exports it."""
from __future__ import annotations

import io

import matplotlib.pyplot as plt

__all__ = ["figure_png"]


def figure_png(fig, dpi: int = 80) -> bytes:
    """The PNG bytes of a figure (any matplotlib backend), then the figure is closed."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()
