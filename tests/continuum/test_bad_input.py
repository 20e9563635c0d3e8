"""Bad input to the transport pipeline gets a clear error naming the argument (issue #13, item 5)."""
import numpy as np
import pytest

from continuum.diffusion import estimate_diffusion_profile, lag_scan, msd_in_bins, transition_counts
from continuum.grid import Grid
from continuum.nernst_planck import poisson_boltzmann
from continuum.poisson import potential_from_profile
from continuum.profiles import density_profile
from continuum.trajectories import Trajectory


def box_trajectory(frames=20, atoms=8, height=10.0, seed=0):
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, height, (frames, atoms, 3))
    cells = np.broadcast_to(np.eye(3) * height, (frames, 3, 3)).copy()
    return Trajectory(pos, cells, True, times=np.arange(frames) * 10.0, charges=np.tile([1.0, -1.0], atoms // 2))


def walkers(frames=400, walkers=20, seed=1):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(0, 2e-11, (frames, walkers)), axis=0) % 1e-9


EDGES = np.linspace(0, 1e-9, 6)


@pytest.mark.parametrize("dt, lag, match", [
    (-1e-12, 1, "dt must be the positive time between frames"),
    (0.0, 1, "dt must be the positive time between frames"),
    (1e-12, 0, "lag must be an integer number of frames >= 1, got 0"),
    (1e-12, 1.5, "lag must be an integer number of frames >= 1, got 1.5"),
])
def test_time_step_and_lag(dt, lag, match):
    x = walkers()
    with pytest.raises(ValueError, match=match):
        estimate_diffusion_profile(x, EDGES, dt, lag, periodic=True)
    with pytest.raises(ValueError, match=match):
        msd_in_bins(x, EDGES, dt, lag, periodic=True)
    with pytest.raises(ValueError, match=match):
        lag_scan(x, EDGES, dt, [2, lag], periodic=True)
    if dt > 0:
        with pytest.raises(ValueError, match=match):
            transition_counts(x, EDGES, lag, periodic=True)


def test_lag_longer_than_the_trajectory():
    with pytest.raises(ValueError, match="need more than lag=400 frames, got 400"):
        msd_in_bins(walkers(), EDGES, 1e-12, 400)


def test_bins_zero_or_beyond_the_box():
    traj = box_trajectory()
    with pytest.raises(ValueError, match="bins must be a number of bins >= 1"):
        density_profile(traj, 2, bins=0)
    with pytest.raises(ValueError, match=r"edges \[0, 15\] Å reach beyond the periodic box \[0, 10\] Å along axis 2"):
        density_profile(traj, 2, bins=np.linspace(0, 15, 16))
    with pytest.raises(ValueError, match=r"reach beyond the periodic box"):
        density_profile(traj, 2, bins=10, range_=(-5.0, 10.0))
    with pytest.raises(ValueError, match="range_ must be"):
        density_profile(traj, 2, bins=10, range_=(5.0, 5.0))
    with pytest.raises(ValueError, match="strictly increasing"):
        density_profile(traj, 2, bins=[0.0, 5.0, 4.0])
    assert density_profile(traj, 2, bins=10).values.shape == (10,)      # the box itself is fine


def test_empty_trajectory_and_empty_selection():
    with pytest.raises(ValueError, match="the trajectory is empty: 0 frames of 4 atoms"):
        Trajectory(np.zeros((0, 4, 3)), np.zeros((0, 3, 3)), True)
    with pytest.raises(ValueError, match="the trajectory is empty: 3 frames of 0 atoms"):
        Trajectory(np.zeros((3, 0, 3)), np.zeros((3, 3, 3)), True)
    with pytest.raises(ValueError, match="selection is empty"):
        density_profile(box_trajectory(), 2, bins=10, atoms=np.zeros(8, bool))


def test_negative_bulk_concentration():
    grid = Grid.uniform(1e-8, 50)
    with pytest.raises(ValueError, match=r"bulk_concentrations\[1\] = -100.0: concentrations must be >= 0"):
        poisson_boltzmann(grid, [100.0, -100.0], [1, -1])


def test_number_density_is_not_a_charge_density():
    traj = box_trajectory()
    number = density_profile(traj, 2, bins=10)
    with pytest.raises(ValueError, match="needs a charge density in C/m\\^3, got a 'number density' profile "
                                         "in '1/m\\^3'.*weights=\"charge\""):
        potential_from_profile(number)
    phi, _, _ = potential_from_profile(density_profile(traj, 2, bins=10, weights="charge"), "periodic")
    assert phi.values.shape == (11,)
