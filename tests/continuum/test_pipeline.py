"""The one-call pipeline (issue #13 item 1): an ASE trajectory file of cations and anions in a known
landscape → densities, φ, D(x), F(x) → steady Nernst–Planck fluxes, against the closed-form flux of the
true D(x), U(x); its report files; its refusals."""
import csv
import warnings

import numpy as np
import pytest

from hybrid.units import K_B

from continuum.grid import Grid
from continuum.langevin import lattice_diffusion, sample_boltzmann
from continuum.nernst_planck import NernstPlanck, Species
from continuum.pipeline import load, transport
from continuum.trajectories import Trajectory

T = 298.15
VT = K_B * T / 1.602176634e-19
L_A, FRAME_FS = 40.0, 500.0                 # slab height (Å), frame spacing (fs)
N_EACH, N_FRAMES = 800, 600


def d_cat(z):                               # Å²/fs: 2e-8 m²/s rising to 4e-8 across the slab
    return 2e-3 * (1 + z / L_A)


def d_an(z):
    return np.full_like(np.asarray(z, dtype=float), 3e-3)


def bu_cat(z):                              # a 2 kT barrier for the cations
    return 2.0 * np.exp(-((z - 20.0) / 5.0) ** 2)


def bu_an(z):                               # a 1 kT well for the anions
    return -1.0 * np.exp(-((z - 20.0) / 5.0) ** 2)


def exact_flux(d, bu, z, c_left, c_right, voltage):
    """J (mol m⁻² s⁻¹) = (c_L e^{u_L} − c_R e^{u_R}) / ∫ e^{u}/D dx, u = βU + zφ/V_T, φ falling linearly
    from ``voltage`` to 0 across the slab."""
    x = np.linspace(0, L_A, 200001)
    u = bu(x) + z * voltage * (1 - x / L_A) / VT
    integral = np.trapezoid(np.exp(u) / (d(x) * 1e-20 / 1e-15), x * 1e-10)
    return (c_left * np.exp(u[0]) - c_right * np.exp(u[-1])) / integral


@pytest.fixture(scope="module")
def ion_file(tmp_path_factory):
    from ase import Atoms
    from ase.io import Trajectory as AseTrajectory
    zs = []
    for k, (d, bu) in enumerate(((d_cat, bu_cat), (d_an, bu_an))):
        z0 = sample_boltzmann(bu, (0, L_A), N_EACH, seed=10 + k)
        zs.append(lattice_diffusion(z0, N_FRAMES, FRAME_FS, d, bu, (0, L_A), 400, periodic=False, seed=20 + k))
    z = np.concatenate(zs, axis=1)
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 30.0, (z.shape[1], 2))
    charges = [1.0] * N_EACH + [-1.0] * N_EACH
    path = tmp_path_factory.mktemp("ions") / "ions.traj"
    with AseTrajectory(str(path), "w") as out:
        for f in range(N_FRAMES):
            atoms = Atoms(["Na"] * N_EACH + ["Cl"] * N_EACH, positions=np.column_stack([xy, z[f]]),
                          cell=[30.0, 30.0, L_A], pbc=[True, True, False])
            atoms.set_initial_charges(charges)
            atoms.info["time"] = f * FRAME_FS
            out.write(atoms)
    return path


@pytest.fixture(scope="module")
def report(ion_file):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transport(ion_file, {"Na+": "Na", "Cl-": "Cl"}, axis="z", bins=20, extent=(0, L_A * 1e-10),
                         voltage=0.025, concentrations={"Na+": (100.0, 1.0), "Cl-": (100.0, 1.0)})


def test_pipeline_flux_matches_the_closed_form_of_the_true_landscape(report):
    """25 mV (about k_BT/e) and a 100:1 gradient across a 4 nm slab: each species' flux from the trajectory's own D(x),
    F(x) agrees with the exact NP flux of the D(x), U(x) that generated it (within 10 %: D to a few per
    cent, F to 0.1 kT), and the valences came from the file's charges."""
    assert report.species["Na+"].valence == 1 and report.species["Cl-"].valence == -1
    assert report.timestep == pytest.approx(FRAME_FS * 1e-15)
    for name, d, bu, z in (("Na+", d_cat, bu_cat, 1), ("Cl-", d_an, bu_an, -1)):
        s = report.species[name]
        exact = exact_flux(d, bu, z, 100.0, 1.0, 0.025)
        assert report.flux[name] == pytest.approx(exact, rel=0.1), (name, report.flux[name], exact)
        assert s.estimate.resolution >= 2                      # the recommended lag, not a short one
        assert not any("no plateau" in m for m in s.warnings), s.warnings
        Dx = s.estimate.diffusivity
        assert np.sqrt(np.mean((Dx.values / (d(Dx.x * 1e10) * 1e-5) - 1) ** 2)) < 0.1
    assert report.current == pytest.approx(96485.33212 * (report.flux["Na+"] - report.flux["Cl-"]), rel=1e-9)
    # the trajectory's own charge density gives φ across the slab; it is reported, not added to F
    assert report.potential is not None and report.potential.unit == "V"


def test_zero_voltage_and_the_trajectory_concentrations_give_no_flux(ion_file):
    """The defaults (no voltage, the trajectory's own end concentrations): the equilibrium it came from,
    so the predicted flux is small against the diffusive scale D c / L."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = transport(ion_file, {"Na+": "Na"}, bins=20, extent=(0, L_A * 1e-10))
    s = r.species["Na+"]
    scale = 2e-8 * s.c_left / (L_A * 1e-10)
    assert abs(r.flux["Na+"]) < 0.05 * scale
    c_traj = s.concentration
    assert np.all(c_traj > 0) and s.c_left == pytest.approx(c_traj[0])


def test_report_files(report, tmp_path):
    out = report.write(tmp_path / "transport")
    names = {p.name for p in out.iterdir()}
    assert names == {"profiles.csv", "fluxes.csv", "report.md", "transport.png"}
    rows = list(csv.DictReader(open(out / "fluxes.csv")))
    assert [r["species"] for r in rows] == ["Na+", "Cl-"]
    assert float(rows[0]["flux_mol_m2_s"]) == pytest.approx(report.flux["Na+"], rel=1e-5)
    prof = list(csv.DictReader(open(out / "profiles.csv")))
    assert {r["quantity"] for r in prof} >= {"concentration", "diffusivity", "free_energy", "potential"}
    assert "| Na+ | +1 |" in (out / "report.md").read_text()


def test_bad_input_is_named(ion_file):
    traj = load(ion_file)
    with pytest.raises(ValueError, match="no atom is named 'K'"):
        transport(traj, {"K+": "K"}, extent=(0, 4e-9))
    with pytest.raises(ValueError, match=r"concentrations: \['Ca2\+'\]"):
        transport(traj, {"Na+": "Na"}, extent=(0, 4e-9), concentrations={"Ca2+": (1, 1)})
    with pytest.raises(ValueError, match="hi > lo"):
        transport(traj, {"Na+": "Na"}, extent=(4e-9, 0))
    with pytest.raises(ValueError, match="axis"):
        transport(traj, {"Na+": "Na"}, axis="w", extent=(0, 4e-9))
    with pytest.raises(ValueError, match="timestep"):
        load(ion_file, timestep=-1.0)
    bare = Trajectory(traj.positions[:50], traj.cells[:50], traj.pbc, traj.times[:50], None, traj.names)
    with pytest.raises(ValueError, match="no valence given"):
        transport(bare, {"Na+": "Na"}, extent=(0, 4e-9))
    with pytest.warns(UserWarning, match="not Å"):
        with pytest.raises(ValueError):
            transport(bare, {"Na+": "Na"}, extent=(0, 40.0))


def test_nernst_planck_refuses_the_trajectory_field_on_top_of_its_pmf(report):
    """φ(x) from the trajectory's charges plus a charged species whose F(x) was estimated from the same
    kind of trajectory would count the field twice: refused, naming the species."""
    s = report.species["Na+"]
    grid = Grid.uniform(L_A * 1e-10, 50)
    sp = Species("Na+", 1, s.estimate.diffusivity, pmf=s.estimate.free_energy)
    with pytest.raises(ValueError, match="twice"):
        NernstPlanck(grid, [sp], T, potential=report.potential)
    NernstPlanck(grid, [sp], T, potential=lambda x: 0.05 * (1 - x / (L_A * 1e-10)))      # an applied field is fine


def test_hybrid_transport_command(ion_file, tmp_path, capsys):
    """The same pipeline from the command line: the report on stdout and in --out; a species that matches
    nothing exits 2 before anything is written."""
    from hybrid.cli import main
    out = tmp_path / "t"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        code = main(["transport", str(ion_file), "--species", "Na+=Na", "--species", "Cl-=Cl", "--bins", "20",
                     "--extent", "0", "4e-9", "--voltage", "0.025", "--concentration", "Na+=100,1",
                     "--concentration", "Cl-=100,1", "--out", str(out)])
    assert code == 0
    assert "| Na+ | +1 |" in capsys.readouterr().out
    row = list(csv.DictReader(open(out / "fluxes.csv")))[0]
    assert float(row["flux_mol_m2_s"]) == pytest.approx(exact_flux(d_cat, bu_cat, 1, 100.0, 1.0, 0.025), rel=0.1)
    bad = tmp_path / "bad"
    assert main(["transport", str(ion_file), "--species", "K+=K", "--out", str(bad)]) == 2
    assert "no atom is named 'K'" in capsys.readouterr().err and not bad.exists()
    assert main(["transport", str(ion_file), "--species", "Na+=Na", "--concentration", "Na+=1", "--out",
                 str(bad)]) == 2
    assert "--concentration 'Na+=1'" in capsys.readouterr().err and not bad.exists()
