"""A deployable BoIR / CID model without torch (docs/inference.md#deployment-folder).

``python -m boir_core export`` writes one folder: the two ONNX graphs and ``deploy.json`` (decode settings,
input size and normalisation, keypoint names, skeleton, flip index). This package runs it with numpy,
ONNX Runtime and OpenCV only: :class:`BoirDeployment` (``runtime``), the numpy decoder
:func:`boir_core.deploy.decode_np.decode_np` (the kit's decoding step for step) and a command line,
``python -m boir_core.deploy FOLDER IMAGE...`` (prints the poses as JSON). Nothing here imports torch or a part
of the kit that does (tests/deploy/test_deploy_torch_free.py runs it in a virtual environment without torch).
"""
from . import decode_np  # the module; its decoder is decode_np.decode_np
from .decode_np import NpDecodeResult
from .runtime import BoirDeployment, DeployDependencyError, OnnxNetwork, preprocess
from .settings import (
    FORMAT,
    SETTINGS_FILE,
    DecodeSettings,
    DeploySettingsError,
    InputSettings,
    KeypointSet,
    make_settings,
    read_settings,
)

__all__ = ["BoirDeployment", "OnnxNetwork", "decode_np", "NpDecodeResult", "preprocess", "make_settings",
           "read_settings", "DecodeSettings", "InputSettings", "KeypointSet", "DeploySettingsError",
           "DeployDependencyError", "FORMAT", "SETTINGS_FILE"]
