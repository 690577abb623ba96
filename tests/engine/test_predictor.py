"""One inference path: the runner protocol, the exact backend, ``Predictor``, ``test.device``, and a weights
file's wrappers recognised in one place (docs/inference.md#exact-and-fast-inference)."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from boir_core.config import load_config, preset_label
from boir_core.data import KeypointDataset, get_profile
from boir_core.engine.evaluation.runner import run_evaluation
from boir_core.engine.inference.backends import (
    Runner,
    RunnerOptions,
    TorchRunner,
    TorchSettings,
    as_runner,
    make_runner,
)
from boir_core.engine.inference.decode import decode, decode_settings_from_config
from boir_core.engine.inference.export import DenseGraph
from boir_core.engine.inference.predictor import (
    EXACT,
    FAST,
    BackendChoice,
    DecodedDataset,
    ImageShare,
    Predictor,
    resolve_backend,
)
from boir_core.engine.inference.weights import check_inference_weights, checkpoint_config, load_inference_model
from boir_core.model import build_model, save_checkpoint
from boir_core.model.checkpoints import TRAIN_STATE_FORMAT
from boir_core.model.random_weights import seeded_trained_like_


def _tiny_model(cfg, seed=0):
    torch.manual_seed(seed)
    return seeded_trained_like_(build_model(cfg, train=False), seed=seed)  # BN statistics far from identity


def _eager_dense(model, images):
    """Oracle for the dense call, written out: backbone, mirrored views flipped back, center head."""
    f = model.features(images)
    f = torch.cat([f[:1], f[1:].flip(3)])
    return f, model.center_logits(f)


def test_every_runner_is_a_runner_and_a_plain_network_runs_as_the_exact_one(tiny_cfg):
    model = _tiny_model(tiny_cfg)
    exact = make_runner("exact", model)
    assert isinstance(exact, Runner) and isinstance(make_runner("torch", model), Runner)
    assert (exact.name, exact.variant, exact.threads) == ("exact", "eager", torch.get_num_threads())
    wrapped = as_runner(model)
    assert isinstance(wrapped, TorchRunner) and wrapped.name == "exact" and wrapped.model is model
    assert as_runner(exact) is exact
    with pytest.raises(TypeError, match="features, center_logits, instance_heatmaps, got dict"):
        as_runner({"features": None})
    with pytest.raises(ValueError, match="takes no options"):
        make_runner("exact", model, options=RunnerOptions(threads=2))
    # the exact runner's dense call is the plain network's, bit for bit; so is the exported graph's module
    x = torch.randn(1, 3, 64, 96)
    images = torch.cat([x, x.flip(3)])
    with torch.no_grad():
        want = _eager_dense(model, images)
        for got in (exact.dense(images), DenseGraph(model)(images)):
            assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])


def test_decode_of_a_plain_network_equals_decode_through_the_exact_runner(tiny_cfg):
    model = _tiny_model(tiny_cfg)
    prof = get_profile(tiny_cfg.data.dataset)
    settings = dataclasses.replace(decode_settings_from_config(tiny_cfg.test, prof.flip_index, prof.sigmas),
                                   center_threshold=0.0)  # people in every image, whatever the random weights say
    image = torch.randn(3, 64, 128, generator=torch.Generator().manual_seed(1))
    meta = {"trans_inv": np.array([[1.0, 0, 3], [0, 1.0, 5]]), "image_id": 7}
    a = decode(model, image, meta, settings)
    b = decode(TorchRunner(model, TorchSettings.plain()), image, meta, settings)
    assert len(a.poses) > 0 and a.poses == b.poses


def test_an_unset_backend_is_exact_where_numbers_are_reported_and_fast_for_predict(tiny_cfg):
    assert tiny_cfg.test.backend is None
    assert resolve_backend(None) == EXACT == "exact" and resolve_backend(None, FAST) == FAST == "torch"
    assert resolve_backend("openvino", FAST) == "openvino"
    with pytest.raises(ValueError, match="'tensorrt' is not one of"):
        resolve_backend("tensorrt")
    model = _tiny_model(tiny_cfg)
    assert Predictor(tiny_cfg, model=model).backend == "exact"
    assert Predictor(tiny_cfg, model=model, backend=BackendChoice(default=FAST)).runner.variant.startswith("fold_bn")
    assert Predictor(tiny_cfg.override("test.backend=torch"), model=model).backend == "torch"  # the user's pick
    with pytest.raises(ValueError, match=r"'torch' runner but test.backend='exact' \(unset"):
        Predictor(tiny_cfg, model=model, runner=make_runner("torch", model))
    with pytest.raises(TypeError, match=r"BackendChoice\('torch'\)"):
        Predictor(tiny_cfg, model=model, backend="torch")


def test_evaluate_by_default_gives_the_poses_of_plain_eager_decoding(tiny_cfg, tmp_path):
    """``evaluate`` with test.backend unset decodes through ``exact``: its results are plain eager decoding's,
    bit for bit (the fast path folds BatchNorm, whose rounding moves scores), and metrics.json says so."""
    cfg = tiny_cfg.override("test.max_images=2", "test.center_threshold=0.0")
    model = _tiny_model(cfg)
    weights = save_checkpoint(model, tmp_path / "w.pt")
    out = run_evaluation(cfg, weights, out_dir=tmp_path / "eval", progress=False)
    results = json.loads(out["results_path"].read_text())
    assert json.loads(out["metrics_path"].read_text())["config"]["test"]["backend"] == "exact"
    dataset = KeypointDataset.from_config(cfg, train=False)
    prof = get_profile(cfg.data.dataset)
    settings = decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas)
    want = []
    with torch.no_grad():
        for i in range(2):  # the plain network, its calls written out: no runner
            s = dataset[i]
            x = s["image"][None]
            feats, center = _eager_dense(model.eval(), torch.cat([x, x.flip(3)]))
            oracle = _Plain(model, feats, center)
            want += decode(oracle, s["image"], s["meta"], settings, image_id=s["image_id"]).poses
    assert len(results) == len(want) > 0
    assert [r["keypoints"] for r in results] == [w["keypoints"] for w in want]
    assert [r["score"] for r in results] == [w["score"] for w in want]
    # the fast path is not the exact one: its BatchNorm folding rounds differently
    fast = Predictor(cfg, model=model, backend=BackendChoice("torch"))
    s = dataset[0]
    with torch.no_grad():
        assert not torch.equal(fast.runner.dense(torch.cat([s["image"][None], s["image"][None].flip(3)]))[1],
                               _eager_dense(model, torch.cat([s["image"][None], s["image"][None].flip(3)]))[1])


class _Plain(Runner):
    """A runner that hands back dense maps computed outside it and runs the network's own instance head."""

    name, variant, device, threads = "plain", "oracle", torch.device("cpu"), 1

    def __init__(self, model, feats, center):
        self.model, self.feats, self.center = model, feats, center

    def dense(self, images):
        return self.feats, self.center

    def instances(self, features, coords):
        v, n = features.shape[0], coords.shape[0]
        return self.model.instance_heatmaps(features, coords.repeat(v, 1), torch.arange(v).repeat_interleave(n))


def test_an_image_share_names_a_process_s_images_and_the_shares_merge_in_data_set_order():
    """One process decodes the first test.max_images (0: all); under torchrun image i is rank i % world_size's,
    and the shares merge back into what one process gives."""
    assert list(ImageShare().indices(5)) == [0, 1, 2, 3, 4] and ImageShare(max_images=3).total(5) == 3
    assert ImageShare(max_images=9).total(5) == 5
    assert [list(ImageShare(4, rank, 3).indices(10)) for rank in range(3)] == [[0, 3], [1], [2]]
    for bad in ((0, 2, 2), (0, -1, 1)):
        with pytest.raises(ValueError, match=r"rank must be in \[0, world_size="):
            ImageShare(*bad)
    with pytest.raises(TypeError, match="share= takes an ImageShare"):
        Predictor.decode_dataset(None, [], share=2)
    ids = [7, 3, 5]
    shares = [DecodedDataset([{"image_id": 7, "s": 1}, {"image_id": 5, "s": 2}], 0.5, 0.25, 2),
              DecodedDataset([{"image_id": 3, "s": 3}], 0.125, 0.5, 1)]
    merged = DecodedDataset.merge(shares, ids)
    assert [r["image_id"] for r in merged.results] == [7, 3, 5]
    assert (merged.time_network, merged.time_decode, merged.num_images) == (0.625, 0.75, 3)


def test_inference_runs_on_test_device_and_never_reads_train_device(tiny_cfg, tmp_path):
    weights = save_checkpoint(_tiny_model(tiny_cfg), tmp_path / "w.pt")
    # a training device this machine does not have: inference does not look at it
    cfg = tiny_cfg.override("train.device=cuda:99", "test.device=cpu")
    pred = Predictor(cfg, weights)
    assert pred.device == torch.device("cpu") and pred.runner.device == torch.device("cpu")
    assert next(pred.model.parameters()).device == torch.device("cpu")
    assert load_config("tiny").test.device == "auto"  # unset: the default train.device had before
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="'cuda' requested but CUDA is not available"):
            Predictor(tiny_cfg.override("train.device=cpu", "test.device=cuda"), None)


def test_a_training_state_is_unwrapped_in_one_place_with_its_config(tiny_cfg, tmp_path):
    """Our training state (its ``model_state``, here with DDP's ``module.`` prefix) loads for inference as
    the kit's weights: the preset is its config's, not "released weights", and its config is found."""
    model = _tiny_model(tiny_cfg.override("preset=release"))
    cfg = tiny_cfg.override("preset=release", "name=from_state")
    state = {"format": TRAIN_STATE_FORMAT, "config": cfg.to_dict(), "step": 3,
             "model_state": {f"module.{k}": v for k, v in model.state_dict().items()}}
    path = tmp_path / "last.pt"
    torch.save(state, path)
    loaded, report = load_inference_model(tiny_cfg, path)
    assert report.kind == "boir-kit" and any("model_state" in n for n in report.notes)
    assert loaded.weights_preset == preset_label(cfg.to_dict()) == "release"
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    assert check_inference_weights(tiny_cfg, path).kind == "boir-kit"
    assert checkpoint_config(path).name == "from_state"  # no config.yaml beside it: the state's own config
