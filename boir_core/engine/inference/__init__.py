"""boir_core.engine.inference: one prediction, from weights to poses.

- :mod:`.weights`: which weights file (a run folder, ``final.pt``, a training state, a released ``.pth``, the
  shipped demo weights) into which inference network, loaded strictly
- :mod:`.backends`: who runs the network (the runners: exact, torch, onnxruntime, openvino, onnxruntime_int8);
  :mod:`.export`: the two ONNX graphs and ``deploy.json``; :mod:`.quantize`: the dense graph in INT8 and its
  calibration images
- :mod:`.decode`: the released decoding (docs/inference.md#decoding-steps), its settings (:mod:`.decode_settings`)
  and OKS / OKS-NMS (:mod:`.oks`)
- :mod:`.predictor`: :class:`~.predictor.Predictor`, the one inference path (weights, device, backend, decode
  settings); :mod:`.predict` (images → poses and drawings, :mod:`.draw`) and :mod:`.profile` build on it

Imports nothing from training or evaluation. Submodules are imported on use.
"""
