"""boir_core.viz.pipeline: notebook 01's opening picture of the network."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from boir_core.model import BoIR  # noqa: E402
from boir_core.viz.pipeline import STAGES, draw_pipeline  # noqa: E402


def test_the_train_only_boxes_are_the_heads_the_inference_model_drops():
    train_only = {s.name for s in STAGES if s.train_only}
    assert train_only == {"buk", "emb", "bbox"}
    with torch.device("meta"):  # no memory, no initialisation: only the modules are needed
        full = BoIR(17, "hrnet_w18_small", train_heads=True)
        lean = BoIR(17, "hrnet_w18_small", train_heads=False)
    dropped = {n.removesuffix("_head") for n, _ in full.multihead.named_children()} - \
        {n.removesuffix("_head") for n, _ in lean.multihead.named_children()}
    assert dropped == train_only


def test_the_drawing_has_one_box_per_stage_dashed_where_train_only():
    fig = draw_pipeline()
    boxes = [p for p in fig.axes[0].patches if isinstance(p, FancyBboxPatch)]
    assert len(boxes) == len(STAGES)
    texts = [t.get_text() for t in fig.axes[0].texts]
    for stage, box in zip(STAGES, boxes):
        assert (box.get_linestyle() != "-") == stage.train_only, stage.name
        assert stage.text in texts
    plt.close(fig)
