"""pyproject.toml names version ranges, requirements/constraints.txt the exact tested stack (environment.yml
names the same versions); the course installs into Colab's stack without replacing it; README's commands are
the Makefile's."""
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[1]
CONSTRAINTS = REPO / "requirements" / "constraints.txt"
COLAB = REPO / "requirements" / "colab.txt"


def _name(name: str) -> str:
    """A package name in PEP 503's normal form (``PyYAML`` and ``pyyaml`` are one package)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(lines) -> dict[str, str]:
    """``{name: version}`` of ``name==version`` lines; comments and blank lines are skipped, anything else fails."""
    out = {}
    for line in lines:
        spec = line.split("#", 1)[0].strip()
        if not spec:
            continue
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", spec)
        assert m, f"not pinned exactly: {spec!r}"
        out[_name(m.group(1))] = m.group(2)
    return out


def _requirements(runtime_only: bool = False) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    if not runtime_only:
        specs += [s for extra in project["optional-dependencies"].values() for s in extra]
    return [Requirement(s) for s in specs]


def test_constraints_and_environment_name_the_same_packages_and_versions():
    pins = _pins(CONSTRAINTS.read_text().splitlines())
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = _pins([s for s in pip_section if not s.startswith("-e")])
    assert pins == conda
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert "-e ." in pip_section


def test_every_dependency_is_a_range_that_holds_its_pinned_version():
    pins = _pins(CONSTRAINTS.read_text().splitlines())
    requirements = _requirements()
    for req in requirements:
        operators = {s.operator for s in req.specifier}
        assert operators & {">=", ">", "~="}, f"{req}: no lower bound"
        assert not operators & {"==", "==="}, f"{req}: an exact pin belongs in {CONSTRAINTS.name}, not pyproject.toml"
        assert _name(req.name) in pins, f"{req.name} is not pinned in {CONSTRAINTS.name}"
        assert req.specifier.contains(pins[_name(req.name)]), f"{req}: the pinned {pins[_name(req.name)]} is outside"
    assert set(pins) == {_name(r.name) for r in requirements}, "a pin without a dependency in pyproject.toml"


def test_colab_versions_fall_in_every_runtime_range():
    colab = _pins(COLAB.read_text().splitlines())
    ranges = {_name(r.name): r.specifier for r in _requirements(runtime_only=True)}
    assert {"torch", "numpy", "pandas", "matplotlib", "ipywidgets"} <= set(colab) <= set(ranges)
    outside = {name: version for name, version in colab.items() if not ranges[name].contains(version)}
    assert not outside, f"Colab's versions outside pyproject.toml's ranges: {outside}"


def test_pip_installs_the_course_into_colab_without_replacing_its_stack(tmp_path):
    """pip's own resolution (dry run, package metadata only: no wheel is downloaded) of installing the course
    where Colab's versions must stay, on this interpreter's Python."""
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), "-c", str(COLAB), str(REPO)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"pip cannot install the course next to Colab's stack:\n{done.stderr[-4000:]}"
    resolved = {_name(item["metadata"]["name"]): item["metadata"]["version"]
                for item in json.loads(report.read_text())["install"]}
    assert resolved["kd-lab"]
    for name, version in _pins(COLAB.read_text().splitlines()).items():
        assert resolved[name] == version, f"{name}: pip picked {resolved[name]}, Colab has {version}"


def test_make_and_ci_install_the_locked_stack():
    makefile = (REPO / "Makefile").read_text()
    install = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert install, "the Makefile's $(STAMP) install rule is missing"
    assert "CONSTRAINTS := requirements/constraints.txt" in makefile
    assert '-m pip install -c $(CONSTRAINTS) -e ".[dev]"' in install.group(1)
    assert "$(CONSTRAINTS)" in install.group(0).splitlines()[0], "the install must rerun when the lock changes"


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^lab: setup", makefile, re.M) and re.search(r"^test: setup", makefile, re.M)
