"""The README's test command is what CI runs, verbatim."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_test_command():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    test_cmd = blocks[1].strip()
    assert "pytest" in test_cmd
    assert test_cmd in (ROOT / ".ci" / "run").read_text().splitlines()


def _lock() -> dict:
    """{normalised name: pinned version} of the lock file."""
    from packaging.utils import canonicalize_name
    pins = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version.strip()
    return pins


def test_both_readme_commands_install_from_the_lock():
    blocks = re.findall(r"```bash\n(.*?)\n```", (ROOT / "README.md").read_text(), re.S)
    for cmd in blocks[:2]:
        assert "-c requirements-lock.txt" in cmd, cmd
    assert "pip-compile" in (ROOT / "requirements-lock.txt").read_text()      # says how it was made


def test_lock_pins_every_dependency_within_the_ranges_of_pyproject():
    """Every requirement of pyproject.toml (core and every extra) is pinned, inside its range."""
    import tomllib
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    pins = _lock()
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    for text in reqs:
        req = Requirement(text)
        if canonicalize_name(req.name) == "qmml-hybrid":
            continue
        assert canonicalize_name(req.name) in pins, f"{req.name} is not in requirements-lock.txt"
        assert req.specifier.contains(pins[canonicalize_name(req.name)], prereleases=True), (text, pins[req.name])


def test_installed_versions_are_the_locked_ones():
    """The environment the suite runs in was installed from the lock (as both README commands do)."""
    from importlib.metadata import PackageNotFoundError, version
    wrong = {}
    for name, pinned in _lock().items():
        try:
            got = version(name)
        except PackageNotFoundError:
            wrong[name] = (pinned, None)
            continue
        if got != pinned:
            wrong[name] = (pinned, got)
    assert not wrong, f"installed versions differ from requirements-lock.txt: {wrong}"
