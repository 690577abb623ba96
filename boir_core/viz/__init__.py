"""boir_core.viz — pictures and explorers (imports nothing heavy; import the submodules you need).

- :mod:`boir_core.viz.similarity`: embedding similarity maps (Gaussian / release / cosine kernels);
- :mod:`boir_core.viz.widgets`: the Bbox Mask Loss explorer and the similarity viewer (ipywidgets).
"""
