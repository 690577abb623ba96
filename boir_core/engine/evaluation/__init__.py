"""boir_core.engine.evaluation: a data set through the one inference path, scored by its protocol.

- :mod:`.runner`: :func:`~.runner.run_evaluation` (weights → predictor → every test image → metrics JSON; DDP
  splits the images) and the demo's data (:func:`~.runner.prepare_demo_data`)
- :mod:`.evaluate`: COCO / OCHuman (pycocotools, faster-coco-eval) and CrowdPose protocols, the metrics JSON
- :mod:`.results`: the COCO results file (read, checked, written; test-dev's); :mod:`.crowd_split`: AP by crowd
  index on a COCO-protocol data set
- :mod:`.coco_ap`: COCO AP written out step by step, for teaching (notebook 05's explorer)
- :mod:`.keypoint_loss`: the held-out instance keypoint loss, a continuous score where AP is still 0

Builds on inference, never on training. Submodules are imported on use.
"""
