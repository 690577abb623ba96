"""boir_core.paper.stats: the paired t-test against scipy's, and its inverse."""
import pytest

from boir_core.paper.stats import paired_t_test, t_for_p


@pytest.mark.parametrize("a,b", [([1.0, 2.0, 3.5, 4.0], [0.5, 2.2, 3.0, 3.1]), ([70.6, 70.4, 70.7, 70.5, 70.6],
                                                                                   [69.8, 69.7, 69.9, 69.8, 69.6])])
def test_paired_t_test_matches_scipy(a, b):
    from scipy.stats import ttest_rel

    ours, ref = paired_t_test(a, b), ttest_rel(a, b)
    assert ours.t == pytest.approx(float(ref.statistic), rel=1e-12)
    assert ours.p == pytest.approx(float(ref.pvalue), rel=1e-9)
    assert ours.df == len(a) - 1


def test_t_for_p_inverts_the_test():
    t = t_for_p(6.4e-5, 4)
    d = [t / 5 ** 0.5 + x for x in (0.1, -0.1, 0.05, -0.05, 0.0)]  # mean t/√5 ... sd chosen below
    # a sample whose t statistic is exactly t: scale the spread
    import statistics

    sd = statistics.stdev(d)
    mean = statistics.mean(d)
    scale = mean / (t * sd / 5 ** 0.5)
    d = [mean + (v - mean) * scale for v in d]
    assert paired_t_test(d, [0.0] * 5).p == pytest.approx(6.4e-5, rel=1e-6)


def test_degenerate_inputs():
    assert paired_t_test([1, 2], [1, 2]).p == 1.0
    with pytest.raises(ValueError):
        paired_t_test([1], [2])
    with pytest.raises(ValueError):
        paired_t_test([1, 2], [2])


def test_paired_confidence_interval_is_the_set_of_means_the_test_does_not_reject():
    """Oracle: at the interval's ends, a paired t-test of (a - end) against b gives p = 0.05 exactly; inside, more."""
    from boir_core.paper.stats import paired_confidence_interval, paired_t_test

    a, b = [0.31, 0.29, 0.35, 0.30], [0.27, 0.28, 0.30, 0.24]
    lo, hi = paired_confidence_interval(a, b)
    d = sum(x - y for x, y in zip(a, b)) / len(a)
    assert lo < d < hi and abs((d - lo) - (hi - d)) < 1e-12
    for end in (lo, hi):
        assert paired_t_test([x - end for x in a], b).p == pytest.approx(0.05, abs=1e-9)
    assert paired_t_test([x - d for x in a], b).p == pytest.approx(1.0)
    lo99, hi99 = paired_confidence_interval(a, b, level=0.99)
    assert lo99 < lo and hi < hi99
    with pytest.raises(ValueError, match="level must lie in"):
        paired_confidence_interval(a, b, level=95)
