"""Is a difference between two methods larger than the run-to-run noise? The paired t-test of paper §4.3.

The paper trains BoIR and CID five times each and reports p = 6.4·10⁻⁵ for "BoIR is better on COCO val".
With n paired scores a_s, b_s (pair s shares everything but the method: seed, data order, hardware)::

    d_s = a_s − b_s,   d̄ = mean(d),   s_d = std(d, ddof=1),   t = d̄ / (s_d / √n),   df = n − 1
    p (two-sided) = 2 · P(T_df > |t|)   for Student's t distribution T_df

:func:`t_for_p` inverts the last line: the t (hence d̄ / s_d) a reported p-value needs.
This room imports nothing from the rest of the kit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

__all__ = ["PairedTTest", "paired_t_test", "t_for_p", "paired_confidence_interval"]


@dataclass(frozen=True)
class PairedTTest:
    n: int
    mean_diff: float  # d̄
    sd_diff: float  # s_d (ddof = 1)
    t: float
    df: int
    p: float  # two-sided

    def __str__(self) -> str:
        return (f"n = {self.n}, mean difference {self.mean_diff:+.4g} (sd {self.sd_diff:.3g}), "
                f"t({self.df}) = {self.t:.3g}, p = {self.p:.3g}")


def paired_t_test(a: Sequence[float], b: Sequence[float]) -> PairedTTest:
    """Two-sided paired t-test of ``a`` against ``b`` (same length ≥ 2). All-equal differences give
    t = 0, p = 1 when they are 0 and t = ±inf, p = 0 otherwise."""
    from scipy.stats import t as student_t  # local: scipy.stats is a slow import (~0.5 s), for notebook 06 only

    if len(a) != len(b):
        raise ValueError(f"paired_t_test: {len(a)} scores against {len(b)}; pairs must match one to one")
    n = len(a)
    if n < 2:
        raise ValueError(f"paired_t_test needs at least 2 pairs, got {n}")
    d = [float(x) - float(y) for x, y in zip(a, b)]
    mean = sum(d) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in d) / (n - 1))
    if sd == 0:
        t = 0.0 if mean == 0 else math.copysign(math.inf, mean)
    else:
        t = mean / (sd / math.sqrt(n))
    p = 1.0 if t == 0 else float(2 * student_t.sf(abs(t), n - 1))
    return PairedTTest(n=n, mean_diff=mean, sd_diff=sd, t=t, df=n - 1, p=p)


def t_for_p(p: float, df: int) -> float:
    """The |t| at which a two-sided test with ``df`` degrees of freedom gives p-value ``p``."""
    from scipy.stats import t as student_t  # local: scipy.stats is a slow import (~0.5 s), for notebook 06 only

    if not 0 < p < 1:
        raise ValueError(f"p must lie in (0, 1), got {p}")
    return float(student_t.isf(p / 2, df))


def paired_confidence_interval(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float]:
    """The ``level`` confidence interval of the mean paired difference mean(a - b): d̄ ± t_{(1+level)/2, n-1} ·
    s_d / √n (the interval the paired t-test rejects 0 outside of, at 1 - level)."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    test = paired_t_test(a, b)
    half = t_for_p(1 - level, test.df) * test.sd_diff / math.sqrt(test.n)
    return test.mean_diff - half, test.mean_diff + half
