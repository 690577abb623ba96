"""The preset travels from the config to the run folder, the weights, the metrics file and the rendered row."""
from __future__ import annotations

import json

import torch
import yaml

from boir_core.engine.evaluation.runner import run_evaluation
from boir_core.engine.training.train import train
from boir_core.model import build_model, export_released, save_checkpoint
from boir_core.paper import load_results, render_table


def test_preset_is_recorded_from_training_to_the_rendered_row(tiny_cfg, tmp_path):
    cfg = tiny_cfg.override("preset=release", "train.epochs=1", "train.max_steps_per_epoch=1")
    run = tmp_path / "run"
    train(cfg, run, progress=False)
    dumped = yaml.safe_load((run / "config.yaml").read_text())
    assert dumped["preset"] == "release" and dumped["data"]["box_clipping"] == "release"
    assert dumped["model"]["bbox_head_init"] == "release" and dumped["loss"]["bbox_decode"] == "release"

    # ours: the preset of the config that trained the weights (even when evaluated with another config)
    out = run_evaluation(tiny_cfg.override("test.max_images=1"), run, out_dir=tmp_path / "ours",
                         key="boir_w32_coco_val", progress=False)
    assert json.loads(out["metrics_path"].read_text())["preset"] == "release"

    # the authors' weights: a released-format file
    released = tmp_path / "boir_coco_w32.pth"
    torch.save(export_released(build_model(tiny_cfg, train=False)), released)
    out2 = run_evaluation(tiny_cfg.override("test.max_images=1"), released, out_dir=tmp_path / "rel",
                          key="boir_w48_coco_val", progress=False)
    assert json.loads(out2["metrics_path"].read_text())["preset"] == "release (released weights)"

    # a paper-preset run of the tiny config departs from its preset in the one switch its YAML sets
    # (weights in the kit's format carrying their training config, as train's final.pt does)
    run_p = save_checkpoint(build_model(tiny_cfg, train=False), tmp_path / "paper.pt",
                            extra={"config": tiny_cfg.to_dict()})
    out3 = run_evaluation(tiny_cfg.override("test.max_images=1"), run_p, out_dir=tmp_path / "paper",
                          key="cid_w32_coco_val", progress=False)
    assert json.loads(out3["metrics_path"].read_text())["preset"] == "paper + loss.weighting=release"

    text = render_table(6, load_results([out["metrics_path"], out2["metrics_path"], out3["metrics_path"]]))
    rows = [line for line in text.splitlines() if "ours: `" in line]
    assert len(rows) == 3
    assert any("`boir_w32_coco_val` (metrics.json; preset release)" in r for r in rows)
    assert any("`boir_w48_coco_val` (metrics.json; preset release (released weights))" in r for r in rows)
    assert any("`cid_w32_coco_val` (metrics.json; preset paper + loss.weighting=release)" in r for r in rows)
