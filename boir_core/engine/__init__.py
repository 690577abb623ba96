"""boir_core.engine: training, inference, evaluation and the jobs built on them, in that order.

- :mod:`.training`: one training run (:func:`~boir_core.engine.training.job.build_job`, the step, the loop
  :func:`~boir_core.engine.training.train.train`, its length, precision, schedule, checkpoints, resume)
- :mod:`.inference`: one prediction (weights, the runners of :mod:`~boir_core.engine.inference.backends`, export,
  :mod:`~boir_core.engine.inference.decode`, :class:`~boir_core.engine.inference.predictor.Predictor`,
  predict, profile)
- :mod:`.evaluation`: a data set through the predictor, scored (COCO / OCHuman / CrowdPose protocols)
- :mod:`.jobs`: demo, dry run, shipping the demo weights, doctor
- :mod:`.distributed`: devices and the process group, used by training, inference and evaluation alike

Training and inference never import each other; evaluation builds on inference; the jobs on all three
(``tests/test_rooms.py``). Submodules are imported on use, so ``import boir_core.engine`` stays light.
"""
