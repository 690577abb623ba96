"""Notebook 06's seed study never depends on what ran before in its folder: runs of other settings (the demo's
``demo_train_iters=4``, then the browser test's 2) get folders of their own, so nothing is 'started over',
no run folder mixes two runs, and the same settings find their finished run again (same scores)."""
from __future__ import annotations

import json

import pytest

from boir_core.paper.seeds import demo_pair_configs, run_fingerprint, seed_run_dir, seed_study

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    from boir_core.data.sources.synthetic import SynthCrowdSpec, make_synthcrowd

    root = tmp_path_factory.mktemp("synthcrowd")
    make_synthcrowd(root, SynthCrowdSpec(num_train=6, num_val=2, seed=5, image_size=(112, 144), max_people=2))
    return root


def _iters(run_dir):
    return [json.loads(x)["iter"] for x in (run_dir / "metrics.jsonl").read_text().splitlines()
            if json.loads(x)["type"] == "iter"]


def test_two_seed_studies_with_other_settings_never_share_a_run_folder(synth, tmp_path, capsys):
    work = tmp_path / "results" / "demo" / "seeds"
    longer = {"BoIR": demo_pair_configs(synth, iters=2)["BoIR"]}  # as `make demo` ran notebook 06 (4 iterations)
    shorter = {"BoIR": demo_pair_configs(synth, iters=1)["BoIR"]}  # as the browser test runs it afterwards (2)
    first = seed_study(longer, [0], work, val_images=2)
    capsys.readouterr()
    second = seed_study(shorter, [0], work, val_images=2)
    out = capsys.readouterr().out
    assert "starting over" not in out and "different config" not in out
    dirs = sorted(p.name for p in work.iterdir())
    assert len(dirs) == 2 and all(d.startswith("BoIR_seed0_") for d in dirs)
    d4, d2 = (seed_run_dir(work, "BoIR", c["BoIR"].override("train.seed=0")) for c in (longer, shorter))
    assert "max_steps_per_epoch: 2" in (d4 / "config.yaml").read_text() and _iters(d4) == [2]
    assert "max_steps_per_epoch: 1" in (d2 / "config.yaml").read_text() and _iters(d2) == [1]
    # the first settings again: their finished run is found and reused, with the same score
    again = seed_study(longer, [0], work, val_images=2)
    out = capsys.readouterr().out
    assert again == first and again != second
    assert f"resumed from {d4}" in out and "starting over" not in out
    assert len(list(work.iterdir())) == 2 and _iters(d4) == [2]


def test_the_fingerprint_is_what_a_resume_compares(synth):
    cfg = demo_pair_configs(synth, iters=2)["BoIR"]
    same = [cfg.override(o) for o in ("train.device=cpu", "train.log_every=3", "data.workers=2",
                                      "test.max_images=7", "name=other")]
    assert {run_fingerprint(c) for c in same} == {run_fingerprint(cfg)}  # where and how it runs: same run
    changed = ("train.max_steps_per_epoch=3", "train.seed=1", "train.lr=0.01", "model.emb_dim=4", "loss.beta=5")
    prints = {run_fingerprint(cfg.override(o)) for o in changed}
    assert len(prints) == len(changed) and run_fingerprint(cfg) not in prints


def _row(arch, seed, ap, crowded, sparse, steps=1500):
    return {"arch": arch, "seed": seed, "steps": steps, "AP": ap, "crowded_AP": crowded, "sparse_AP": sparse}


def test_seed_study_summary_pairs_by_seed_and_reports_mean_sd_and_the_paired_interval():
    import statistics

    from boir_core.paper.seeds import format_seed_study, seed_study_summary
    from boir_core.paper.stats import paired_confidence_interval

    rows = [_row("boir", 0, 0.30, 0.25, 0.45), _row("cid", 0, 0.27, 0.21, 0.44),
            _row("cid", 1, 0.26, 0.22, 0.43), _row("boir", 1, 0.31, 0.27, 0.44),
            _row("boir", 2, 0.28, 0.24, 0.42), _row("cid", 2, 0.27, 0.20, 0.43),
            _row("boir", 3, 0.40, 0.40, 0.40)]  # no CID partner: left out
    s = seed_study_summary(rows)
    assert s["pairs"] == 3 and s["seeds"] == [0, 1, 2] and s["unpaired"] == 1 and s["steps"] == [1500]
    crowded = s["metrics"]["crowded_AP"]
    assert crowded["boir"] == [0.25, 0.27, 0.24] and crowded["cid"] == [0.21, 0.22, 0.20]
    assert crowded["boir_mean"] == pytest.approx(statistics.mean([0.25, 0.27, 0.24]))
    assert crowded["cid_sd"] == pytest.approx(statistics.stdev([0.21, 0.22, 0.20]))
    assert crowded["diff_mean"] == pytest.approx((0.04 + 0.05 + 0.04) / 3)
    assert crowded["ci95"] == pytest.approx(paired_confidence_interval([0.25, 0.27, 0.24], [0.21, 0.22, 0.20]))
    text = format_seed_study(s)
    assert "3 paired seed(s) [0, 1, 2]" in text and "1 run(s) without a partner" in text
    assert "crowded_AP" in text and "95% CI" in text
    one = seed_study_summary(rows[:2])
    assert one["pairs"] == 1 and "diff_mean" not in one["metrics"]["AP"]
    assert "fewer than 2 paired seeds" in format_seed_study(one)


def test_seed_study_figure_draws_each_pair_and_the_means():
    import matplotlib

    matplotlib.use("Agg")
    from boir_core.paper.seeds import seed_study_summary
    from boir_core.viz.training import seed_study_figure

    rows = [_row("boir", 0, 0.30, 0.25, 0.45), _row("cid", 0, 0.27, 0.21, 0.44),
            _row("boir", 1, 0.31, 0.27, 0.44), _row("cid", 1, 0.26, 0.22, 0.43)]
    s = seed_study_summary(rows)
    fig = seed_study_figure(s)
    axes = fig.axes
    assert len(axes) == 3
    crowded = axes[1]
    pair_lines = [ln for ln in crowded.lines if len(ln.get_xdata()) == 2]
    assert sorted(tuple(ln.get_ydata()) for ln in pair_lines) == [(0.21, 0.25), (0.22, 0.27)]  # CID -> BoIR per seed
    lo, hi = s["metrics"]["crowded_AP"]["ci95"]
    assert f"{lo:+.3f}" in crowded.get_title() and "+0.045" in crowded.get_title()
    assert "2 paired seeds, 1500 steps each" in fig._suptitle.get_text()


def test_seed_study_reading_follows_the_interval():
    from boir_core.paper.seeds import seed_study_reading, seed_study_summary

    rows = [_row("boir", 0, 0.30, 0.25, 0.45), _row("cid", 0, 0.27, 0.21, 0.44),
            _row("boir", 1, 0.31, 0.27, 0.44), _row("cid", 1, 0.26, 0.22, 0.43),
            _row("boir", 2, 0.28, 0.24, 0.42), _row("cid", 2, 0.27, 0.20, 0.43)]
    s = seed_study_summary(rows)
    lines = seed_study_reading(s)
    crowded = next(x for x in lines if x.startswith("crowded_AP"))
    lo, hi = s["metrics"]["crowded_AP"]["ci95"]
    assert lo > 0 and "excludes 0: BOIR is ahead of CID" in crowded and f"{lo:+.3f}" in crowded
    sparse = next(x for x in lines if x.startswith("sparse_AP"))
    lo, hi = s["metrics"]["sparse_AP"]["ci95"]
    assert lo < 0 < hi and "cannot tell the two apart" in sparse
    assert lines[-1].startswith("the gap is larger on crowded images (+0.043)")
    flipped = seed_study_summary([{**r, "arch": {"boir": "cid", "cid": "boir"}[r["arch"]]} for r in rows])
    assert "behind" in next(x for x in seed_study_reading(flipped) if x.startswith("crowded_AP"))
    assert "not the paper's pattern" in seed_study_reading(flipped)[-1]
    assert seed_study_reading(seed_study_summary(rows[:2]))[0] == "AP: fewer than 2 paired seeds, no interval"


def test_the_readme_quotes_the_committed_seed_study():
    """The README's seed-study block is exactly what the committed rows give (rewrite it with
    ``python benchmarks/seed_study.py --readme`` after adding runs)."""
    from pathlib import Path

    from boir_core.paper.seeds import README_SEED_BEGIN, README_SEED_END, seed_study_readme_block
    from boir_core.studies import load_study

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = README_SEED_BEGIN + readme.split(README_SEED_BEGIN, 1)[1].split(README_SEED_END, 1)[0] + README_SEED_END
    assert block == seed_study_readme_block(load_study("seed_study"))


def test_the_readme_block_is_rewritten_between_its_markers(tmp_path, monkeypatch):
    """`benchmarks/seed_study.py --out F --readme R` as run from the shell (in-process: runpy with its argv)."""
    import runpy
    import sys
    from pathlib import Path

    from boir_core.paper.seeds import README_SEED_BEGIN, README_SEED_END

    rows = [dict(_row("boir", s, 0.3 + s / 100, 0.25, 0.45), images_per_step=8, threads=1, cpu="a CPU",
                 train_seconds=600.0 + s, command=f"python -m boir_core train seed {s}") for s in (0, 1)]
    rows += [dict(r, arch="cid", AP=r["AP"] - 0.02) for r in rows]
    data = tmp_path / "seed_study.jsonl"
    data.write_text("".join(__import__("json").dumps(r) + "\n" for r in rows))
    readme = tmp_path / "README.md"
    readme.write_text(f"# Title\n\nbefore\n{README_SEED_BEGIN}\nold text\n{README_SEED_END}\nafter\n")
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "seed_study.py"
    monkeypatch.setattr(sys, "argv", [str(script), "--out", str(data), "--readme", str(readme)])
    runpy.run_path(str(script), run_name="__main__")
    text = readme.read_text()
    assert text.startswith("# Title\n\nbefore\n") and text.endswith(f"{README_SEED_END}\nafter\n")
    assert "old text" not in text and "AP          boir 0.305 ± 0.007   cid 0.285 ± 0.007" in text
    assert "boir − cid +0.020" in text and "`python -m boir_core train seed 0`" in text
    assert "(BOIR 10–10 min, CID 10–10 min)" in text
    readme.write_text("no markers here\n")
    with pytest.raises(SystemExit, match="no seed-study block"):  # a one-line error, exit status 1
        runpy.run_path(str(script), run_name="__main__")
    assert readme.read_text() == "no markers here\n"
