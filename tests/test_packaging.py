"""pyproject.toml and environment.yml pin the same stack; README's commands are the Makefile's."""
import re
import tomllib
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def _pins(specs):
    out = {}
    for spec in specs:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", spec.strip())
        assert m, f"not pinned exactly: {spec!r}"
        out[m.group(1).lower()] = m.group(2)
    return out


def test_pyproject_and_environment_name_the_same_packages_and_versions():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += extra
    pyproject = _pins(specs)
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = _pins([s for s in pip_section if not s.startswith("-e")])
    assert pyproject == conda
    assert pyproject["torch"] == "2.14.1" and pyproject["torchvision"] == "0.29.1"
    assert "-e ." in pip_section


def test_readme_names_the_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^lab: setup", makefile, re.M) and re.search(r"^test: setup", makefile, re.M)
