"""boir_core.viz — pictures and explorers (imports nothing heavy; import the submodules you need).

- :mod:`boir_core.viz.similarity`: embedding similarity maps (Gaussian / release / cosine kernels), box pixel
  sets (B∖A) and the per-person separation score;
- :mod:`boir_core.viz.figures`: the paper's figures (Fig. 1's pair rule and maps, t-SNE, Figs. 4-6 panels);
- :mod:`boir_core.viz.training`: training logs (``metrics.jsonl``, the shipped models' logs) as series and figures;
- :mod:`boir_core.viz.scenes`: SynthCrowd val pictures with their people, for the notebooks;
- :mod:`boir_core.viz.widgets`: the Bbox Mask Loss explorer and the similarity viewer (ipywidgets);
- :mod:`boir_core.viz.explorers`: the explorers of notebooks 01, 03, 05 and 07 (a knob, a drawing that follows);
- :mod:`boir_core.viz.formula_explorers`: one formula each (the kernel ψ, OKS, the focal loss);
- :mod:`boir_core.viz.pipeline`: the network as one picture (notebook 01 opens with it).
- :mod:`boir_core.viz.png`: a figure as PNG bytes, what the explorers and widgets show.
"""
