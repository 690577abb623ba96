"""Every number of the paper's Tables 1-7 as typed data.

Transcribed from the BMVC 2023 paper text (supplementary material included). A ``None`` value is a '-' in
the paper. Percentages are kept as the paper prints them (``70.6`` means 70.6 AP), parameter counts in
millions and times in milliseconds.

Each :class:`Table` has :class:`Column` s (``name`` is the metrics-JSON field they come from, ``header`` the
paper's header text) and :class:`Row` s. A row that BoIR Kit can reproduce carries a ``key``: the ``"key"``
field of the metrics JSON file that fills it (``boir_w32_coco_val``, ``t4_full``, ...) and the ``command``
that produces that file. Rows of other methods (HRNet, DEKR, ED-Pose, ...) are paper-only (``key is None``).

Table 4 and Table 7 are two side-by-side tables in the paper; here they are two tables each (ids ``4L``,
``4R``, ``7L``, ``7R``), whose rows carry their settings (``{"Bbox Mask Loss": True, "Bbox Head": False}``,
``{"β": 0.5}``) instead of a method and backbone.

Known inconsistency (docs/release_vs_paper.md#paper-inconsistencies): the paper's Table 3 lists CID's OCHuman AP as
44.9 (val) / 44.0 (test), while the BoIR README lists 45.7 / 44.6. The paper's numbers are the values
here; the README's are kept in the row's ``alt_values`` with their source in ``note``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping, Optional, Union

__all__ = [
    "GROUPS",
    "Column",
    "Row",
    "Table",
    "TABLES",
    "ABLATION_KEYS",
    "COMMANDS",
    "RUN_SPECS",
    "get_table",
    "tables_for",
    "all_keys",
    "rows_for_key",
]

#: Method families, in the paper's order ("Top-down methods", "Bottom-up methods", "Single stage methods").
GROUPS = ("top-down", "bottom-up", "single-stage")

Setting = Union[bool, int, float, str]


@dataclass(frozen=True)
class Column:
    """One numeric column.

    ``name``: the key used in :attr:`Row.values` and, for metric columns, the field of the metrics JSON
    ``"metrics"`` object (``AP``, ``AP50``, ``AP_easy``, ...). Table 5's ``params_M`` and ``time_ms`` come
    from ``params.inference`` and ``timings`` instead. ``metric``: the metrics field the column reads
    (differs from ``name`` only in Table 3). ``source``: for tables whose columns come from different runs
    (Table 3), the name of the row's key that fills the column (see :meth:`Row.key_for`); ``dataset`` and
    ``split`` then override the table's.
    """

    name: str
    header: str
    metric: str
    source: Optional[str] = None
    dataset: Optional[str] = None
    split: Optional[str] = None
    unit: str = "%"


@dataclass(frozen=True)
class Row:
    """One row of a paper table.

    ``method`` without marks or citation (``"CID"``), ``marks`` the paper's suffix (``"*"`` = trained on COCO
    and finetuned on CrowdPose), ``ref`` the citation as printed (``"[54]"``). ``input_size`` is a string as
    printed (``"512"``, ``"384×288"``), ``None`` for '-'. ``group`` is one of :data:`GROUPS` or ``None`` in
    tables without groups. ``settings`` holds the ablation switches of Tables 4 and 7.
    ``key``: which of our runs fills the row (``None``: paper only). ``keys``: for rows filled from several
    runs (Table 3), ``{column source: key}``. ``config``: the config file of an ablation row.
    ``alt_values``: the same quantity as reported elsewhere (see ``note``).
    """

    method: str
    values: Mapping[str, Optional[float]]
    backbone: Optional[str] = None
    input_size: Optional[str] = None
    group: Optional[str] = None
    marks: str = ""
    ref: str = ""
    settings: Mapping[str, Setting] = field(default_factory=dict)
    key: Optional[str] = None
    keys: Mapping[str, str] = field(default_factory=dict)
    command: Optional[str] = None
    config: Optional[str] = None
    note: str = ""
    alt_values: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # freeze the mappings so the module-level tables cannot be edited by accident
        for name in ("values", "settings", "keys", "alt_values"):
            object.__setattr__(self, name, MappingProxyType(dict(getattr(self, name))))
        if self.group is not None and self.group not in GROUPS:
            raise ValueError(f"Row {self.method!r}: group {self.group!r} is not one of {GROUPS}")

    @property
    def label(self) -> str:
        """The method as the paper prints it, marks included, citation excluded (``"BoIR*"``)."""
        return self.method + self.marks

    @property
    def reproducible(self) -> bool:
        return self.key is not None or bool(self.keys)

    def key_for(self, column: Column) -> Optional[str]:
        """The run key that fills ``column`` of this row (``None``: paper only)."""
        if column.source is not None:
            return self.keys.get(column.source)
        return self.key

    def run_keys(self) -> tuple[str, ...]:
        """Every run key this row reads, primary first, without repeats."""
        out = [self.key] if self.key else []
        out += [k for k in self.keys.values() if k not in out]
        return tuple(out)


@dataclass(frozen=True)
class Table:
    """One paper table (or one half of Table 4 / Table 7)."""

    id: str
    number: int
    title: str
    dataset: str
    split: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    label_columns: tuple[str, ...] = ("Method", "Backbone", "Input size")
    part: Optional[str] = None  # "left" / "right" for Tables 4 and 7
    command: str = ""
    device: Optional[str] = None  # Table 5: where the paper measured time
    caption: str = ""

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def shape(self) -> tuple[int, int]:
        """(number of rows, number of numeric columns)."""
        return len(self.rows), len(self.columns)

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"Table {self.id} has no column {name!r}; columns: {list(self.column_names)}")

    def row(self, key: str) -> Row:
        """The row filled by run ``key``."""
        for r in self.rows:
            if key in r.run_keys():
                return r
        raise KeyError(f"Table {self.id} has no row with key {key!r}")


# ---------------------------------------------------------------------------------------------------
# Commands that produce each run's metrics file.

def _evaluate(config: str, checkpoint: str, key: str, extra: str = "") -> str:
    return (f"python -m boir_core evaluate --config configs/{config}.yaml --checkpoint <{checkpoint}> "
            f"--key {key} {extra}").rstrip()


def _finetune(config: str, arch: str, backbone: str, key: str) -> str:
    return (f"python -m boir_core train --config configs/{config}.yaml "
            f"(starts from the {arch} {backbone} COCO weights), then "
            + _evaluate(config, "its run folder", key))


def _ablation(key: str) -> str:
    cfg = f"configs/ablations/{key}.yaml"
    return (f"python -m boir_core train --config {cfg}, then "
            f"python -m boir_core evaluate --config {cfg} --checkpoint <its run folder> --key {key}")


_TESTDEV = ("(COCO test-dev is scored by the evaluation server: this writes the file to submit; put the "
            "server's numbers in the metrics JSON)")
_OCH_VAL = "data.test_split=val"

#: The ablation runs of Tables 4 and 7; each is ``configs/ablations/<key>.yaml``.
ABLATION_KEYS = (
    "t4_no_bmask_no_bbox", "t4_bmask_only", "t4_bbox_only", "t4_full",
    "t4_contrastive_cosine", "t4_contrastive_l2", "t4_ae_l2",
    "t7_beta_0.5", "t7_beta_1", "t7_beta_5", "t7_beta_10", "t7_beta_15",
    "t7_dim_1", "t7_dim_8", "t7_dim_16", "t7_dim_32", "t7_dim_64", "t7_dim_128",
)


def _run_specs() -> dict[str, tuple[str, str, str, str, str, tuple[str, ...]]]:
    """The one run list: run key -> (config, weights stem, arch, data set, split, config overrides).
    :mod:`boir_core.paper.plan` turns it into its ``RUNS``; :data:`COMMANDS` spells each run's command."""
    specs: dict[str, tuple[str, str, str, str, str, tuple[str, ...]]] = {}
    for arch, backbones in (("boir", ("w32", "w48")), ("cid", ("w32",))):
        for bb in backbones:
            pre = f"{arch}_{bb}"
            coco = f"coco_{bb}" if arch == "boir" else f"cid_coco_{bb}"
            crowd = f"crowdpose_{bb}" if arch == "boir" else f"cid_crowdpose_{bb}"
            och = f"ochuman_{bb}" if arch == "boir" else f"cid_ochuman_{bb}"
            coco_w = f"boir_coco_{bb}" if arch == "boir" else coco  # weights are named after what trained them
            crowd_w = f"boir_{crowd}" if arch == "boir" else crowd
            specs[f"{pre}_coco_val"] = (coco, coco_w, arch, "coco", "val", ())
            specs[f"{pre}_coco_testdev"] = (f"{coco}_testdev", coco_w, arch, "coco", "test-dev", ())
            specs[f"{pre}_crowdpose_test"] = (crowd, crowd_w, arch, "crowdpose", "test", ())
            specs[f"{pre}_crowdpose_finetune_test"] = (f"{crowd}_finetune", f"{crowd_w}_finetune", arch,
                                                       "crowdpose", "test", ())
            # OCHuman: the COCO weights, no finetuning
            specs[f"{pre}_ochuman_val"] = (och, coco_w, arch, "ochuman", "val", (_OCH_VAL,))
            specs[f"{pre}_ochuman_test"] = (och, coco_w, arch, "ochuman", "test", ())
    for key in ABLATION_KEYS:
        specs[key] = (f"ablations/{key}", key, "boir", "coco", "val", ())
    return specs


#: Every run key of Tables 1-7 -> (config, weights stem, arch, data set, split, config overrides).
RUN_SPECS: Mapping[str, tuple[str, str, str, str, str, tuple[str, ...]]] = MappingProxyType(_run_specs())

_LABELS = {"boir": "BoIR", "cid": "CID", "w32": "W32", "w48": "W48", "coco": "COCO", "crowdpose": "CrowdPose"}


def _command(key: str) -> str:
    """The command that writes the metrics file of a (non-ablation) run key."""
    config, weights, arch, dataset, split, overrides = RUN_SPECS[key]
    bb = key.split("_")[1]
    if config.endswith("_finetune"):
        return _finetune(config, _LABELS[arch], _LABELS[bb], key)
    trained_on = "crowdpose" if dataset == "crowdpose" else "coco"
    weights_text = f"released {_LABELS[arch]} {_LABELS[bb]} {_LABELS[trained_on]} weights"
    return _evaluate(config, weights_text, key, _TESTDEV if split == "test-dev" else " ".join(overrides))


#: The command that writes the metrics file of each (non-ablation) run key.
COMMANDS: Mapping[str, str] = MappingProxyType({k: _command(k) for k in RUN_SPECS if k not in ABLATION_KEYS})


# ---------------------------------------------------------------------------------------------------
# Row builders

_TD, _BU, _SS = GROUPS
_N = None  # '-' in the paper

_COCO_COLS = (
    Column("AP", "AP", "AP"),
    Column("AP50", "AP ⁵⁰", "AP50"),
    Column("AP75", "AP ⁷⁵", "AP75"),
    Column("AP_M", "AP ^M", "AP_M"),
    Column("AP_L", "AP ^L", "AP_L"),
    Column("AR", "AR", "AR"),
)
_CROWDPOSE_COLS = (
    Column("AP", "AP", "AP"),
    Column("AP50", "AP ⁵⁰", "AP50"),
    Column("AP75", "AP ⁷⁵", "AP75"),
    Column("AP_easy", "AP ^E", "AP_easy"),
    Column("AP_medium", "AP ^M", "AP_medium"),
    Column("AP_hard", "AP ^H", "AP_hard"),
)


#: The cells left of a row's numbers as the paper prints them: (method, ref, backbone, input size, group).
Label = tuple[str, str, Optional[str], Optional[str], Optional[str]]


def _row(cols: tuple[Column, ...], label: Label, nums: tuple, key: Optional[str] = None, marks: str = "",
         **kw) -> Row:
    method, ref, backbone, input_size, group = label
    if len(nums) != len(cols):
        raise ValueError(f"{method} {backbone}: {len(nums)} values for {len(cols)} columns")
    values = {c.name: (None if v is None else float(v)) for c, v in zip(cols, nums)}
    command = kw.pop("command", COMMANDS.get(key) if key else None)
    return Row(method=method, values=values, backbone=backbone, input_size=input_size, group=group,
               marks=marks, ref=ref, key=key, command=command, **kw)


def _settings_row(cols: tuple[Column, ...], settings: dict, nums: tuple, key: str, method: str = "BoIR") -> Row:
    values = {c.name: float(v) for c, v in zip(cols, nums)}
    return Row(method=method, values=values, backbone="HRNet-W32", input_size="512", settings=settings,
               key=key, command=_ablation(key), config=f"configs/ablations/{key}.yaml")


# ---------------------------------------------------------------------------------------------------
# Table 1: COCO test-dev

_t1 = functools.partial(_row, _COCO_COLS)  # ((method, ref, backbone, input size, group), nums, key, marks)


TABLE1 = Table(
    id="1", number=1, dataset="coco", split="test-dev",
    title="Comparison with state-of-the-art methods on COCO test-dev set",
    caption="Best scores are marked as bold for small (e.g. HRNet-W32) and large (e.g. HRNet-W48) models "
            "respectively.",
    columns=_COCO_COLS, command="make reproduce TABLE=1",
    rows=(
        _t1(("SBL", "[37]", "ResNet-152", "384×288", _TD), (73.7, 91.9, 81.1, 70.3, 80.0, _N)),
        _t1(("HRNet", "[62]", "HRNet-W32", "384×288", _TD), (74.9, 92.5, 82.8, 71.3, 80.9, _N)),
        _t1(("HrHRNet", "[9]", "HrHRNet-W32", "512", _BU), (66.4, 87.5, 72.8, 61.2, 74.2, _N)),
        _t1(("DEKR", "[6]", "HRNet-W32", "512", _BU), (67.3, 87.9, 74.1, 61.5, 76.1, 72.4)),
        _t1(("SWAHR", "[19]", "HrHRNet-W32", "512", _BU), (67.9, 88.9, 74.5, 62.4, 75.5, _N)),
        _t1(("FCPose", "[20]", "ResNet-101+FPN", "800", _SS), (65.6, 87.9, 72.6, 62.1, 72.3, _N)),
        _t1(("PETR", "[29]", "ResNet-101", "800", _SS), (68.5, 90.3, 76.5, 62.5, 77.0, _N)),
        _t1(("ED-Pose", "[40]", "ResNet-50", "800", _SS), (69.8, 90.2, 77.2, 64.3, 77.4, _N)),
        _t1(("CID", "[34]", "HRNet-W32", "512", _SS), (68.9, 89.9, 76.0, 63.2, 77.7, 74.6), "cid_w32_coco_testdev"),
        _t1(("CID", "[34]", "HRNet-W48", "640", _SS), (70.7, 90.3, 77.9, 66.3, 77.8, 76.4)),
        _t1(("BoIR", "", "HRNet-W32", "512", _SS), (69.5, 90.4, 76.9, 64.2, 77.3, 75.3), "boir_w32_coco_testdev"),
        _t1(("BoIR", "", "HRNet-W48", "640", _SS), (71.2, 90.8, 78.6, 67.0, 77.6, 77.1), "boir_w48_coco_testdev"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 2: CrowdPose test


_t2 = functools.partial(_row, _CROWDPOSE_COLS)


TABLE2 = Table(
    id="2", number=2, dataset="crowdpose", split="test",
    title="Comparison with state-of-the-art methods on CrowdPose test set",
    caption="Best scores are marked as bold for small (e.g. HRNet-W32) and large (e.g. HRNet-W48) models "
            "respectively. Models with * are trained on COCO and finetuned on CrowdPose.",
    columns=_CROWDPOSE_COLS, command="make reproduce TABLE=2",
    rows=(
        _t2(("SBL", "[57]", "ResNet-101", None, _TD), (60.8, 81.4, 65.7, 71.4, 61.2, 51.2)),
        _t2(("SPPE", "[16]", "ResNet-101", "320×256", _TD), (66.0, 84.2, 71.5, 75.5, 66.3, 57.4)),
        _t2(("HrHRNet", "[9]", "HrHRNet-W48", "640", _BU), (65.9, 86.4, 70.6, 73.3, 66.5, 57.9)),
        _t2(("DEKR", "[9]", "HrHRNet-W32", "512", _BU), (65.7, 85.7, 70.4, 73.0, 66.4, 57.5)),
        _t2(("SWAHR", "[19]", "HrHRNet-W48", "640", _BU), (71.6, 88.5, 77.6, 78.9, 72.4, 63.0)),
        _t2(("PETR", "[29]", "Swin-L", "800", _SS), (71.6, 90.4, 78.3, 77.3, 72.0, 65.8)),
        _t2(("ED-Pose", "[40]", "ResNet-50", "800", _SS), (69.9, 88.6, 75.8, 77.7, 70.6, 60.9)),
        _t2(("CID", "[54]", "HRNet-W32", "512", _SS), (71.3, 90.6, 76.6, 77.4, 72.1, 63.9), "cid_w32_crowdpose_test"),
        _t2(("CID", "[54]", "HRNet-W48", "640", _SS), (72.3, 90.8, 77.9, 78.7, 73.0, 64.8)),
        _t2(("CID", "[54]", "HRNet-W32", "512", _SS), (74.9, 91.8, 81.0, 82.0, 75.8, 66.3),
            "cid_w32_crowdpose_finetune_test", marks="*"),
        _t2(("BoIR", "", "HRNet-W32", "512", _SS), (70.6, 89.9, 76.5, 77.1, 71.2, 63.0), "boir_w32_crowdpose_test"),
        _t2(("BoIR", "", "HRNet-W48", "640", _SS), (71.2, 90.3, 76.7, 77.8, 71.8, 63.5), "boir_w48_crowdpose_test"),
        _t2(("BoIR", "", "HRNet-W32", "512", _SS), (75.8, 92.2, 82.3, 82.3, 76.5, 67.5),
            "boir_w32_crowdpose_finetune_test", marks="*"),
        _t2(("BoIR", "", "HRNet-W48", "640", _SS), (77.2, 92.4, 83.5, 82.7, 78.1, 69.8),
            "boir_w48_crowdpose_finetune_test", marks="*"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 3: COCO val, OCHuman val, OCHuman test (AP, AR)

_T3_COLS = (
    Column("COCO val AP", "AP", "AP", "coco_val", "coco", "val"),
    Column("COCO val AR", "AR", "AR", "coco_val", "coco", "val"),
    Column("OCHuman val AP", "AP", "AP", "ochuman_val", "ochuman", "val"),
    Column("OCHuman val AR", "AR", "AR", "ochuman_val", "ochuman", "val"),
    Column("OCHuman test AP", "AP", "AP", "ochuman_test", "ochuman", "test"),
    Column("OCHuman test AR", "AR", "AR", "ochuman_test", "ochuman", "test"),
)


def _t3(method, ref, bb, nums, prefix=None, **kw):
    keys = {}
    if prefix:
        keys = {"coco_val": f"{prefix}_coco_val", "ochuman_val": f"{prefix}_ochuman_val",
                "ochuman_test": f"{prefix}_ochuman_test"}
    key = keys.get("coco_val")
    command = "; ".join(COMMANDS[k] for k in keys.values()) if keys else None
    return _row(_T3_COLS, (method, ref, bb, None, None), nums, key, keys=keys, command=command, **kw)


TABLE3 = Table(
    id="3", number=3, dataset="coco+ochuman", split="val+test",
    title="Comparison with state-of-the-art methods on COCO val and OCHuman val, test set",
    caption="OCHuman performance is evaluated with COCO pretrained model without fine-tuning.",
    columns=_T3_COLS, label_columns=("Method", "Backbone"), command="make reproduce TABLE=3",
    rows=(
        _t3("DEKR", "[6]", "HRNet-W32", (68.0, 73.0, 37.9, _N, 36.5, _N)),
        _t3("DEKR", "[6]", "HRNet-W48", (71.0, 76.0, _N, _N, _N, _N)),
        _t3("CID", "[52]", "HRNet-W32", (69.8, 75.4, 44.9, _N, 44.0, _N), "cid_w32",
            alt_values={"OCHuman val AP": 45.7, "OCHuman test AP": 44.6},
            note="The BoIR README lists CID's OCHuman AP as 45.7 (val) / 44.6 (test); the paper's Table 3 "
                 "says 44.9 / 44.0 (docs/release_vs_paper.md#paper-inconsistencies). The paper's values are shown."),
        _t3("CID", "[52]", "HRNet-W48", (_N, _N, 46.1, _N, 45.0, _N)),
        _t3("BoIR", "", "HRNet-W32", (70.6, 76.3, 47.4, 80.1, 47.0, 80.3), "boir_w32"),
        _t3("BoIR", "", "HRNet-W48", (72.5, 78.3, 49.4, 80.8, 48.5, 80.7), "boir_w48"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 4: ablations on COCO val (HRNet-W32)

_AP_COL = (Column("AP", "AP", "AP"),)
_BM, _BH = "Bbox Mask Loss", "Bbox Head"
_EL, _DM = "Emb. Loss", "Dist. Metric"

TABLE4L = Table(
    id="4L", number=4, part="left", dataset="coco", split="val",
    title="Ablation study of Bbox Mask Loss and bbox regression head on COCO val set",
    columns=_AP_COL, label_columns=(_BM, _BH), command="make reproduce TABLE=4",
    rows=(
        _settings_row(_AP_COL, {_BM: False, _BH: False}, (69.6,), "t4_no_bmask_no_bbox"),
        _settings_row(_AP_COL, {_BM: True, _BH: False}, (70.2,), "t4_bmask_only"),
        _settings_row(_AP_COL, {_BM: False, _BH: True}, (70.4,), "t4_bbox_only"),
        _settings_row(_AP_COL, {_BM: True, _BH: True}, (70.6,), "t4_full"),
    ),
)

TABLE4R = Table(
    id="4R", number=4, part="right", dataset="coco", split="val",
    title="Ablation study of embedding loss function and distance metric on COCO val set, where Bbox Mask "
          "Loss and bbox head are used",
    columns=_AP_COL, label_columns=(_EL, _DM), command="make reproduce TABLE=4",
    rows=(
        _settings_row(_AP_COL, {_EL: "Contrastive", _DM: "cosine"}, (70.3,), "t4_contrastive_cosine"),
        _settings_row(_AP_COL, {_EL: "Contrastive", _DM: "L2"}, (70.2,), "t4_contrastive_l2"),
        _settings_row(_AP_COL, {_EL: "AE", _DM: "L2"}, (70.6,), "t4_ae_l2"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 5: computational cost on COCO val

_T5_COLS = (
    Column("params_M", "# params. (M)", "params.inference", unit="M"),
    Column("time_ms", "Time (ms)", "timings.network_ms+decode_ms", unit="ms"),
    Column("AP", "AP", "AP"),
)


def _t5(method, bb, nums, key=None, **kw):
    return _row(_T5_COLS, (method, "", bb, None, None), nums, key, **kw)


TABLE5 = Table(
    id="5", number=5, dataset="coco", split="val",
    title="Computational cost comparison on COCO val set",
    caption="Inference time is measured with single RTX 3090 and 1 batch size.",
    device="RTX 3090, batch 1",
    columns=_T5_COLS, label_columns=("Method", "Backbone"), command="make reproduce TABLE=5",
    rows=(
        _t5("CID", "HRNet-W32", (29.3, 86.7, 69.8), "cid_w32_coco_val"),
        _t5("CID", "HRNet-W48", (65.4, _N, _N),
            note="CID released no W48 weights; its parameter count (65.41 M, docs/model.md#parameter-counts) "
                 "follows from the architecture alone: python -m boir_core profile --config <a CID W48 config> "
                 "--params-only."),
        _t5("ED-Pose", "ResNet-50", (47.9, 113.9, 71.6)),
        _t5("ED-Pose", "Swin-L", (218.8, 272.1, 74.3)),
        _t5("BoIR", "HRNet-W32", (31.8, 110.6, 70.6), "boir_w32_coco_val"),
        _t5("BoIR", "HRNet-W48", (68.9, 167.3, 72.5), "boir_w48_coco_val"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 6: COCO val, full metrics (supplementary)


_t6 = _t1  # COCO val rows have Table 1's columns


TABLE6 = Table(
    id="6", number=6, dataset="coco", split="val",
    title="Comparison with state-of-the-art methods on COCO val set",
    caption="Best scores are marked as bold for small (e.g. HRNet-W32) and large (e.g. HRNet-W48) models "
            "respectively.",
    columns=_COCO_COLS, command="make reproduce TABLE=6",
    rows=(
        _t6(("SBL", "[37]", "ResNet-152", "384×288", _TD), (74.3, 89.6, 81.1, 70.5, 81.6, 79.7)),
        _t6(("HRNet", "[62]", "HRNet-W32", "384×288", _TD), (75.8, 90.6, 82.5, 72.0, 82.7, 80.9)),
        _t6(("HrHRNet", "[9]", "HrHRNet-W32", "512", _BU), (67.1, 86.2, 73.0, 61.5, 76.1, _N)),
        _t6(("HrHRNet", "[9]", "HrHRNet-W48", "640", _BU), (69.9, 87.2, 76.1, 65.4, 76.4, _N)),
        _t6(("DEKR", "[6]", "HRNet-W32", "512", _BU), (68.0, 86.7, 74.5, 62.1, 77.7, 73.0)),
        _t6(("DEKR", "[6]", "HRNet-W48", "512", _BU), (71.0, 88.3, 77.4, 66.7, 78.5, 76.0),
            note="Input size printed as 512 in the paper."),
        _t6(("SWAHR", "[19]", "HrHRNet-W32", "512", _BU), (67.1, 86.2, 73.0, 61.5, 76.1, _N),
            note="Same numbers as the HrHRNet-W32 row in the paper."),
        _t6(("SWAHR", "[19]", "HrHRNet-W48", "640", _BU), (69.9, 87.2, 76.1, 65.4, 76.4, _N),
            note="Same numbers as the HrHRNet-W48 row in the paper."),
        _t6(("PETR", "[29]", "ResNet-101", "800", _SS), (70.0, 88.5, 77.5, 63.6, 79.4, _N)),
        _t6(("ED-Pose", "[40]", "ResNet-50", "800", _SS), (71.6, 89.6, 78.1, 65.9, 79.8, _N)),
        _t6(("CID", "[54]", "HRNet-W32", "512", _SS), (69.8, 88.5, 76.6, 64.0, 78.9, 75.4), "cid_w32_coco_val",
            note="Scored by the BoIR authors from CID's released weights."),
        _t6(("BoIR", "", "HRNet-W32", "512", _SS), (70.6, 89.2, 77.4, 65.1, 79.0, 76.3), "boir_w32_coco_val"),
        _t6(("BoIR", "", "HRNet-W48", "640", _SS), (72.5, 89.9, 79.1, 68.2, 79.4, 78.3), "boir_w48_coco_val"),
    ),
)

# ---------------------------------------------------------------------------------------------------
# Table 7: β and embedding dimension D on COCO val (Bbox Mask Loss, no bbox head)

_APAR_COLS = (Column("AP", "AP", "AP"), Column("AR", "AR", "AR"))

TABLE7L = Table(
    id="7L", number=7, part="left", dataset="coco", split="val",
    title="Ablation experiment of β on COCO val set. D = 128 by default",
    columns=_APAR_COLS, label_columns=("β",), command="make reproduce TABLE=7",
    rows=tuple(_settings_row(_APAR_COLS, {"β": b}, nums, f"t7_beta_{b}") for b, nums in (
        (0.5, (69.8, 75.7)), (1, (70.3, 76.2)), (5, (70.2, 76.0)), (10, (70.5, 76.2)), (15, (70.2, 76.0)))),
)

TABLE7R = Table(
    id="7R", number=7, part="right", dataset="coco", split="val",
    title="Ablation experiment of embedding dimension D on COCO val set. β = 10 by default",
    columns=_APAR_COLS, label_columns=("Emb. Dim",), command="make reproduce TABLE=7",
    rows=tuple(_settings_row(_APAR_COLS, {"Emb. Dim": d}, nums, f"t7_dim_{d}") for d, nums in (
        (1, (70.4, 76.3)), (8, (70.4, 76.3)), (16, (70.4, 76.2)), (32, (70.4, 76.3)), (64, (70.1, 75.8)),
        (128, (70.5, 76.2)))),
)

#: Every table, by id, in the paper's order.
TABLES: Mapping[str, Table] = MappingProxyType({t.id: t for t in (
    TABLE1, TABLE2, TABLE3, TABLE4L, TABLE4R, TABLE5, TABLE6, TABLE7L, TABLE7R)})


def get_table(table_id: Union[str, int]) -> Table:
    """One table by id: ``1``, ``"2"``, ..., ``"4L"``, ``"4R"``, ``"7L"``, ``"7R"``."""
    tid = str(table_id).strip().upper()
    if tid in TABLES:
        return TABLES[tid]
    if tid in ("4", "7"):
        raise KeyError(f"Table {tid} has two parts: use '{tid}L' and '{tid}R' (or tables_for({tid}))")
    raise KeyError(f"no paper table {table_id!r}; tables: {list(TABLES)}")


def tables_for(number: Union[int, str]) -> tuple[Table, ...]:
    """Every part of paper table ``number`` (two for Tables 4 and 7, one otherwise)."""
    try:
        n = int(str(number).strip().upper().rstrip("LR"))
    except ValueError:
        raise KeyError(f"no paper table {number!r}; tables are 1-7") from None
    found = tuple(t for t in TABLES.values() if t.number == n)
    if not found:
        raise KeyError(f"no paper table {number!r}; tables are 1-7")
    return found


def all_keys() -> tuple[str, ...]:
    """Every run key any table reads, in first-use order."""
    out: list[str] = []
    for t in TABLES.values():
        for r in t.rows:
            out += [k for k in r.run_keys() if k not in out]
    return tuple(out)


def rows_for_key(key: str) -> list[tuple[Table, Row]]:
    """Every (table, row) that run ``key`` fills."""
    return [(t, r) for t in TABLES.values() for r in t.rows if key in r.run_keys()]
