"""BoIR Kit: Box-Supervised Instance Representation for Multi-Person Pose Estimation (BMVC 2023), for
learning, checking and reproducing the method.

Rooms follow the data flow: :mod:`boir_core.data` -> :mod:`boir_core.model` -> :mod:`boir_core.losses`
-> :mod:`boir_core.engine` -> :mod:`boir_core.paper` / :mod:`boir_core.viz`. Lower rooms never import
higher ones.
"""
from .config import Config, ConfigError, load_config

__version__ = "0.1.0"
__all__ = ["Config", "ConfigError", "load_config", "__version__"]
