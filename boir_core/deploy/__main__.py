"""``python -m boir_core.deploy FOLDER IMAGE...``: poses of each image as COCO keypoint results (JSON on stdout).

torch-free (numpy, onnxruntime, OpenCV). ``image_id`` is the image's position among the arguments (0, 1, ...)
and each result also names its ``file``. An image that cannot be read gets a line ``error: FILE: why`` on
stderr and exit status 2 (the others are still printed); a folder that is not a deployment folder: status 2.
"""
from __future__ import annotations

import argparse
import json
import sys

from .runtime import BoirDeployment, DeployDependencyError
from .settings import DeploySettingsError


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m boir_core.deploy", description=__doc__.splitlines()[0])
    ap.add_argument("folder", help="the deployment folder written by python -m boir_core export")
    ap.add_argument("images", nargs="+", help="image files (any format OpenCV reads)")
    ap.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: its own)")
    ap.add_argument("--indent", type=int, default=None, help="pretty-print the JSON")
    args = ap.parse_args(argv)
    try:
        dep = BoirDeployment(args.folder, threads=args.threads)
    except (DeploySettingsError, DeployDependencyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    results, failed = [], 0
    for i, path in enumerate(args.images):
        try:
            poses = dep.predict_file(path, image_id=i)
        except (OSError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)  # the message names the file
            failed += 1
            continue
        results.extend({**p, "file": path} for p in poses)
    json.dump(results, sys.stdout, indent=args.indent)
    sys.stdout.write("\n")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
