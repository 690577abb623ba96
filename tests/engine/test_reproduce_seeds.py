"""The ablation configs that resolve to one run (notebook 06's finding is computed from the configs)."""
from boir_core.paper.plan import identical_configs


def test_identical_ablation_configs():
    groups = identical_configs()
    assert ("t4_bmask_only", "t7_beta_10", "t7_dim_128") in groups
    assert ("t4_full", "t4_ae_l2") in groups
    assert len(groups) == 2
    assert identical_configs(["t4_full", "t7_beta_10"]) == []
