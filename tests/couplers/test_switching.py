import numpy as np
import pytest

from couplers.switching import Switch, radial_weight


def _derivatives(sw, h=1e-5):
    """s, s', s'' from the switch; the third and fourth by central differences of s''."""
    g2 = lambda x: float(sw(x)[2])  # noqa: E731
    g3 = lambda x: (g2(x + h) - g2(x - h)) / (2 * h)  # noqa: E731
    g4 = lambda x: (g3(x + h) - g3(x - h)) / (2 * h)  # noqa: E731
    return [lambda x: float(sw(x)[0]), lambda x: float(sw(x)[1]), g2, g3, g4]


def _continuous(g, edge):
    """A derivative is continuous at ``edge`` if its jump over ±δ shrinks with δ."""
    jump = lambda d: abs(g(edge + d) - g(edge - d))  # noqa: E731
    big, small = jump(1e-2), jump(1e-3)
    return small < 1e-9 or small < 0.3 * big


@pytest.mark.parametrize("kind,order", [("cubic", 1), ("quintic", 2), ("septic", 3)])
def test_continuity_order_checked_numerically(kind, order):
    sw = Switch(kind)
    assert sw.continuity == order
    derivs = _derivatives(sw)
    for edge in (0.0, 1.0):
        flags = [_continuous(g, edge) for g in derivs[: order + 2]]
        assert flags == [True] * (order + 1) + [False], (kind, edge, flags)


@pytest.mark.parametrize("kind", ["cubic", "quintic", "septic"])
def test_analytic_derivatives(kind):
    sw = Switch(kind)
    t = np.linspace(0.05, 0.95, 7)
    s, ds, d2s = sw(t)
    h = 1e-6
    assert np.allclose(ds, (sw(t + h)[0] - sw(t - h)[0]) / (2 * h), atol=1e-7)
    assert np.allclose(d2s, (sw(t + h)[1] - sw(t - h)[1]) / (2 * h), atol=1e-6)
    assert sw(0.0)[0] == 1.0 and sw(1.0)[0] == 0.0 and sw(-1.0)[0] == 1.0 and sw(2.0)[0] == 0.0
    assert np.allclose(s + sw(1 - t)[0], 1.0)          # symmetric about t = 1/2


def test_radial_weight_and_step():
    w, dw = radial_weight(Switch("quintic"), np.array([1.0, 3.0, 5.0]), 2.0, 2.0)
    assert np.allclose(w, [1.0, 0.5, 0.0]) and dw[1] == pytest.approx(-30 / 16 / 2)
    w, dw = radial_weight(Switch(), np.array([1.9, 2.1]), 2.0, 0.0)
    assert list(w) == [1.0, 0.0] and not dw.any()
    with pytest.raises(ValueError, match="unknown switch 'linear'"):
        Switch("linear")
