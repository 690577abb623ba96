#!/usr/bin/env python
"""Prepare COCO 2017 keypoints, CrowdPose and OCHuman under ``--root`` (default ``data``): the kit's
``boir prepare-data`` (``python -m boir_core prepare-data``), runnable from a checkout, installed or not.

    python data_scripts/prepare_data.py coco --root data --download          # fetch, check, extract, arrange
    python data_scripts/prepare_data.py crowdpose --root data --from ~/dl     # manual downloads in ~/dl
    python data_scripts/prepare_data.py verify coco crowdpose --root data     # re-check prepared folders
    python data_scripts/prepare_data.py list                                  # the archive table

Exit status 0: complete; 1: incomplete (the report names what is missing); 2: a usage error. The logic lives
in :mod:`boir_core.data.sources.prepare`.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # runs from a checkout, installed or not

from boir_core.__main__ import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["prepare-data", *sys.argv[1:]]))
