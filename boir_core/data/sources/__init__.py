"""boir_core.data.sources: where the data sets' files come from, apart from the pipeline that reads them.

- :mod:`.synthetic`: SynthCrowd, the kit's embedded synthetic crowd data set (generated, deterministic)
- :mod:`.prepare`: the real data sets (COCO, CrowdPose, OCHuman) from their archives, laid out as the profiles read
  them (``boir prepare-data``, ``data_scripts/prepare_data.py``)
- :mod:`.layout`: is a prepared data set laid out as the kit reads it (checked before a long job)

The sources may use the data-set profiles and the annotation reader; the pipeline (``boir_core.data``'s other
modules) never imports a source (``tests/test_rooms.py``). Submodules are imported on use.
"""
