"""Ring-polymer MD engines side by side: OpenMM's RPMDIntegrator through the PythonForce bridge
(:func:`couplers.openmm_rpmd.run_rpmd`) against i-PI driving the same Potential through ASE's socket client.

Both run 16 independent 3-D oscillators (H atoms, βħω = 3 at 300 K, :class:`hybrid.analytic.Harmonic`),
P = 8 beads, 1 fs steps, PILE thermostat, ``--steps`` steps, in one process each, one after the other. The
table gives wall time per bead evaluation (the engine's own overhead: the potential itself costs ~20 µs) and
the ratio. Needs i-PI (``pip install ipi``; not a dependency of the package).

    python benchmarks/bench_pimd_engines.py          # ~1 min
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
T = 300.0
N, P = 16, 8

IPI_INPUT = """<simulation verbosity='low'>
  <output prefix='sim'><properties stride='100' filename='out'> [ step, kinetic_cv ] </properties></output>
  <total_steps> {steps} </total_steps>
  <prng><seed> 1 </seed></prng>
  <ffsocket name='hybrid' mode='unix'><address> {address} </address></ffsocket>
  <system>
    <initialize nbeads='{beads}'>
      <file mode='xyz' units='angstrom'> init.xyz </file>
      <cell mode='abc' units='angstrom'> [100.0, 100.0, 100.0] </cell>
      <velocities mode='thermal' units='kelvin'> {T} </velocities>
    </initialize>
    <forces><force forcefield='hybrid'/></forces>
    <ensemble><temperature units='kelvin'> {T} </temperature></ensemble>
    <motion mode='dynamics'><dynamics mode='nvt'>
      <thermostat mode='pile_l'><tau units='femtosecond'> 10 </tau></thermostat>
      <timestep units='femtosecond'> 1.0 </timestep>
    </dynamics></motion>
  </system>
</simulation>
"""

CLIENT = """
import sys
import numpy as np
from ase.calculators.socketio import SocketClient
from ase.io import read
from couplers.ase_calculator import HybridCalculator
from hybrid.analytic import Harmonic
k = float(sys.argv[2])
atoms = read("init.xyz")
atoms.calc = HybridCalculator(Harmonic(k, centres=atoms.positions.copy()))
SocketClient(unixsocket=sys.argv[1]).run(atoms)
"""


def oscillators():
    from hybrid.analytic import Harmonic
    from hybrid.system import AtomicSystem
    from hybrid.units import ACCEL, HBAR, KB_EV
    omega = 3 * KB_EV * T / HBAR
    k = 1.008 * omega**2 / ACCEL
    centres = np.c_[np.arange(N) * 3.0, np.zeros((N, 2))]
    return Harmonic(k, centres=centres), AtomicSystem([1] * N, centres), k


def run_openmm(steps: int) -> float:
    from couplers.openmm_rpmd import run_rpmd
    pot, system, _ = oscillators()
    t0 = time.perf_counter()
    run_rpmd(pot, system, P, T, 1.0, steps, friction=100.0, sample_every=steps, seed=1)
    return (time.perf_counter() - t0) / ((steps + 1) * P)


def run_ipi(steps: int) -> float:
    from ase.io import write
    _, system, k = oscillators()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        address = f"qmml{tmp.name[-8:]}"
        write(tmp / "init.xyz", system.to_ase())
        (tmp / "input.xml").write_text(IPI_INPUT.format(steps=steps, address=address, beads=P, T=T))
        (tmp / "client.py").write_text(CLIENT)
        t0 = time.perf_counter()
        server = subprocess.Popen([shutil.which("i-pi"), "input.xml"], cwd=tmp, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.STDOUT)
        try:
            sock = Path(f"/tmp/ipi_{address}")
            while not sock.exists():
                if server.poll() is not None:
                    raise SystemExit("i-PI exited before opening its socket")
                time.sleep(0.05)
            subprocess.run([sys.executable, "client.py", address, repr(k)], cwd=tmp, check=True)
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
        return (time.perf_counter() - t0) / (steps * P)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1000)
    args = ap.parse_args(argv)
    if shutil.which("i-pi") is None:
        raise SystemExit("i-PI is not installed: pip install ipi")
    t_omm = run_openmm(args.steps)
    t_ipi = run_ipi(args.steps)
    text = "\n".join([
        f"### Ring-polymer MD engines: {N} oscillators, P = {P}, {args.steps} steps", "",
        "| engine | ms per bead evaluation |", "|---|---|",
        f"| OpenMM RPMDIntegrator + PythonForce | {t_omm * 1e3:.2f} |",
        f"| i-PI (socket) + ASE SocketClient | {t_ipi * 1e3:.2f} (server start-up included) |", "",
        f"i-PI / OpenMM: {t_ipi / t_omm:.1f}×", ""])
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "pimd_engines.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
