"""The explorers of notebooks 01, 03, 05 and 07, driven headless through their controls."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from boir_core.viz.explorers import (
    AugmentationExplorer,
    DecodingExplorer,
    FrozenEmbeddingExplorer,
    SimilarityPairExplorer,
    fit_embedding,
    place,
)

BOXES = [(3.0, 4.0, 10.0, 14.0), (10.0, 6.0, 9.0, 13.0)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synth")
    make_synthcrowd(root, SynthCrowdSpec(num_train=3, num_val=2, seed=1, image_size=(160, 192), max_people=3))
    return root


def test_pinned_augmentation_equals_the_datasets_own_draw(synth):
    """load_train(params=...) with the parameters the data set would draw gives the very same sample."""
    from boir_core.data import KeypointDataset, SampleSettings
    from boir_core.data.transforms import sample_affine_params

    ds = KeypointDataset(synth, "synthcrowd", "train",
                         settings=SampleSettings(input_size=128, seed=4, center_jitter=False))
    h, w = ds.read(1).shape[:2]
    params = sample_affine_params(ds.rng_for(1), w, h, ds.augmentation)
    a, b = ds[1], ds.load_train(1, params=params)
    for k in ("image", "multi_heatmap", "instance_keypoints", "instance_bbox"):
        assert torch.equal(a[k], b[k]), k


def test_augmentation_explorer_follows_its_controls(synth):
    from boir_core.data import KeypointDataset, SampleSettings, get_profile

    prof = get_profile("synthcrowd")
    ds = KeypointDataset(synth, "synthcrowd", "train",
                         settings=SampleSettings(input_size=128, seed=0, center_jitter=False))
    ex = AugmentationExplorer(ds, index=0, skeleton=prof.skeleton)
    plain = ex.update()
    png0 = ex.png
    ex.flip.value = "flip"  # the observer recomputes: a mirrored sample with mirrored, re-labelled keypoints
    flipped = ex.last
    s_out = plain["multi_mask"].shape[-1]
    kp, kf = plain["instance_keypoints"], flipped["instance_keypoints"]
    assert kp.shape == kf.shape and ex.png != png0
    vis = (kp[:, list(prof.flip_index), 2] > 0)
    # correct flip alignment: x_out -> S_out - 0.25 - x_out, keypoint k becomes flip_index[k]
    np.testing.assert_allclose(kf[..., 0][vis].numpy(),
                               (s_out - 0.25 - kp[:, list(prof.flip_index), 0])[vis].numpy(), atol=1e-4)
    ex.flip.value = "no flip"
    ex.scale.value = 2.0  # a twice larger crop: the people shrink to half on the map
    small = ex.last
    def spread(s):
        return float(s["instance_keypoints"][..., :2][s["instance_keypoints"][..., 2] > 0].std(0).mean())

    assert spread(small) == pytest.approx(spread(plain) / 2, rel=0.15)
    ex.view.value = "ignore mask"
    assert ex.png and "people" in ex.caption.value


def test_fit_embedding_learns_and_a_moved_box_is_punished():
    from boir_core.losses import bbox_mask_terms

    bbox = torch.tensor(BOXES, dtype=torch.float64)
    args = (torch.zeros(2, dtype=torch.long), bbox[:, :2] + bbox[:, 2:] / 2)
    before = fit_embedding(BOXES, size=24, dim=8, steps=0)
    after = fit_embedding(BOXES, size=24, dim=8)
    assert (float(bbox_mask_terms(after[None], bbox, *args).loss)
            < 0.5 * float(bbox_mask_terms(before[None], bbox, *args).loss))
    ex = FrozenEmbeddingExplorer(BOXES, size=24, dim=8)
    first = ex.update()
    emb = ex.embedding()
    ex.dx.value = 8.0  # box 0 slides onto person 1: its center embedding is person 1's, push_inst fires
    moved = ex.last
    assert ex.embedding() is emb  # frozen: moving a box does not retrain the map
    true_terms, moved_terms = first["true"]["per_instance"], moved["moved"]["per_instance"]
    assert moved_terms["push_inst"][0] > 10 * true_terms["push_inst"][0]
    assert moved["moved"]["total"] > 5 * moved["true"]["total"]
    assert moved["true"]["total"] == pytest.approx(first["true"]["total"])
    ex.dx.value, ex.dy.value = 0.0, 8.0  # box 0 slides down onto the background: push_out fires
    assert ex.last["moved"]["per_instance"]["push_out"][0] > 5 * true_terms["push_out"][0]
    ex.seed.value = 1
    assert not torch.equal(ex.embedding(), emb)
    ex.distance.value = "cosine"
    assert "box 0" in ex.caption.value
    with pytest.raises(ValueError, match="two boxes"):
        FrozenEmbeddingExplorer(BOXES[:1])


def test_decoding_explorer_counts_match_decode(synth):
    from boir_core.config import load_config
    from boir_core.data import KeypointDataset, get_profile
    from boir_core.engine.inference.decode import decode, decode_settings_from_config
    from boir_core.model import build_model

    torch.manual_seed(0)
    cfg = load_config("tiny", [f"data.root={synth}"])
    model = build_model(cfg, train=False).eval()
    with torch.no_grad():  # raise the center prior so that peaks exist in an untrained model
        model.center_head[-1].bias.fill_(2.0) if hasattr(model, "center_head") else None
    prof = get_profile("synthcrowd")
    ds = KeypointDataset.from_config(cfg, train=False)
    settings = decode_settings_from_config(cfg.test, prof.flip_index, prof.sigmas)
    ex = DecodingExplorer(model, ds[0], ds.read(0), settings, prof.skeleton)
    res = ex.update()
    png = ex.png
    ref = decode(model, ds[0]["image"], ds[0]["meta"], settings, return_intermediates=True)
    assert ex.counts(res)[:2] == (len(ref.intermediates["peaks_yx"]), len(ref.poses))
    ex.proposals.value = 1
    assert ex.counts(ex.last)[0] <= 1 and ex.png != png
    ex.flip.value = "no flip"
    ref = decode(model, ds[0]["image"], ds[0]["meta"],
                 dataclasses.replace(settings, max_proposals=1, flip_test=False))
    assert len(ex.last.poses) == len(ref.poses)
    assert "center peaks" in ex.caption.value


def test_similarity_pair_explorer_is_one_at_the_query_and_matches_the_figures_function():
    from boir_core.viz.figures import similarity_from_point

    g = torch.Generator().manual_seed(0)
    feats = {"BoIR": torch.randn(6, 10, 12, generator=g), "CID": torch.randn(5, 10, 12, generator=g)}
    ex = SimilarityPairExplorer(np.zeros((40, 48, 3), np.uint8), feats)
    ex.row.value, ex.col.value = 3, 7
    maps = ex.update()
    for name, m in maps.items():
        assert m[3, 7] == pytest.approx(1.0)
        np.testing.assert_allclose(m, similarity_from_point(feats[name].numpy(), (3, 7), "median"))
    png = ex.png
    ex.bandwidth.value = "median / 4"
    assert ex.last["BoIR"].mean() < maps["BoIR"].mean() and ex.png != png
    with pytest.raises(ValueError, match="differ in size"):
        SimilarityPairExplorer(np.zeros((4, 4, 3), np.uint8), {"a": np.zeros((2, 3, 3)), "b": np.zeros((2, 4, 4))})
    assert place(ex) is ex
