"""boir_core.engine: training, inference decoding, evaluation, prediction, profiling and the demo.

- :mod:`.train`: :func:`~boir_core.engine.training.train.train` (AdamW, warm-up + cosine, AMP, DDP, checkpoints)
  and its parts: :mod:`.precision` (AMP), :mod:`.optimization`, :mod:`.schedule`, :mod:`.seeding`,
  :mod:`.resume_check`, :mod:`.metrics_log`, :mod:`.budget`, :mod:`.checkpointing`, :mod:`.distributed`,
  :mod:`.runlock`, :mod:`.effective_batch` (processes x batch x accumulate, and the paper's)
- :mod:`.decode`: the released inference decoding (docs/inference.md#decoding-steps); :mod:`.oks`: OKS and OKS-NMS
- :mod:`.evaluate`: COCO / OCHuman (pycocotools, faster-coco-eval) and CrowdPose protocols, metrics JSON
- :mod:`.weights`: load a model from any known checkpoint; :mod:`.backends`: who runs the network (runners);
  :mod:`.predictor`: :class:`~boir_core.engine.inference.predictor.Predictor`, the one inference path (weights, device,
  backend, decode settings); :mod:`.runner`: evaluate a data set through it
- :mod:`.predict`, :mod:`.profile`, :mod:`.demo`, :mod:`.doctor`: the CLI's other jobs

Submodules are imported on use, so ``import boir_core.engine`` stays light.
"""
