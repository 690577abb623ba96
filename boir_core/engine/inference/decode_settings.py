"""The decoding settings of a config: the :class:`~boir_core.deploy.settings.DecodeSettings` that
:func:`~boir_core.engine.inference.decode.decode` reads, from the ``test`` section and the data set's flip index and
OKS sigmas. A module of its own, below ``decode`` (which imports the runners) and ``export`` (which writes the
settings into a deployment folder)."""
from __future__ import annotations

from typing import Any, Sequence

from boir_core.deploy.settings import DecodeSettings

__all__ = ["DecodeSettings", "decode_settings_from_config"]


def decode_settings_from_config(test_cfg: Any, flip_index: Sequence[int], oks_sigmas: Sequence[float]
                                ) -> DecodeSettings:
    """:func:`decode`'s settings from a ``TestConfig`` plus the data-set profile's flip index / sigmas."""
    return DecodeSettings(flip_test=test_cfg.flip_test, flip_index=tuple(flip_index),
                          max_proposals=test_cfg.max_proposals, center_threshold=test_cfg.center_threshold,
                          center_pool_kernel=test_cfg.center_pool_kernel,
                          oks_nms_threshold=test_cfg.oks_nms_threshold, oks_sigmas=tuple(oks_sigmas))
