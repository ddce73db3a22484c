"""Launch paths: README's and each lesson's Colab and Binder links point at notebooks of this repository's layout,
all with one repository and branch; the Colab install cell is one text everywhere; Binder's configuration
names the locked versions."""
import os
import re
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from packaging.specifiers import SpecifierSet

REPO = Path(__file__).resolve().parents[1]
BRANCH = "main"
LESSONS = sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB = re.compile(r"https://colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/([^)\s]+)")
BINDER = re.compile(r"https://mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)/([\w.-]+)\?labpath=([^)\s]+)")
CELL_MARK = "<!-- colab-install-cell"


def links(text: str) -> list[tuple[str, str, str, str]]:
    """``(kind, repository, branch, path)`` of every Colab and Binder link in ``text``."""
    return [(kind, m.group(1), m.group(2), unquote(m.group(3)))
            for kind, pattern in (("colab", COLAB), ("binder", BINDER)) for m in pattern.finditer(text)]


def first_markdown(lesson: str) -> dict[str, str]:
    """The lesson's first markdown cell, from its notebook and from its .md source."""
    nb = nbformat.read(REPO / "notebooks" / f"{lesson}.ipynb", as_version=4)
    md = (REPO / "notebooks" / f"{lesson}.md").read_text().split("```{code-cell}", 1)[0]
    return {"ipynb": next(c.source for c in nb.cells if c.cell_type == "markdown"), "md": md}


def install_cell(text: str) -> str:
    """The first ```python block after the marker (README) or in the text (a lesson's first cell)."""
    text = text.split(CELL_MARK, 1)[1] if CELL_MARK in text else text
    return text.split("```python\n", 1)[1].split("```", 1)[0]


def _git(*args) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)


def every_link() -> list[tuple[str, str, str, str, str]]:
    out = [("README.md", *link) for link in links((REPO / "README.md").read_text())]
    for lesson in LESSONS:
        for kind, text in first_markdown(lesson).items():
            out += [(f"{lesson}.{kind}", *link) for link in links(text)]
    return out


def test_there_are_lessons_and_links():
    assert len(LESSONS) >= 6
    assert len(every_link()) == 2 * len(LESSONS) * 3     # README, and each lesson's .ipynb and .md


def test_every_link_names_one_repository_and_the_default_branch():
    found = every_link()
    repos = {repo for _, _, repo, _, _ in found}
    assert len(repos) == 1, f"the links name several repositories: {sorted(repos)}"
    clone = re.search(r"https://github\.com/([\w.-]+/[\w.-]+)", install_cell((REPO / "README.md").read_text()))
    assert clone and {clone.group(1)} == repos, "the install cell clones another repository than the links open"
    assert {branch for _, _, _, branch, _ in found} == {BRANCH}


def test_the_default_branch_is_the_links_branch():
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout")
    head = _git("symbolic-ref", "--short", "refs/remotes/origin/HEAD").stdout.strip()   # a clone knows it
    if head:
        assert head == f"origin/{BRANCH}"
    else:
        assert _git("rev-parse", "--verify", "--quiet", f"refs/heads/{BRANCH}").returncode == 0


@pytest.mark.parametrize("where,kind,repo,branch,path", every_link())
def test_each_link_points_at_a_notebook_of_the_repository(where, kind, repo, branch, path):
    target = REPO / path
    assert target.is_file() and target.suffix == ".ipynb", f"{where}: {kind} link to missing {path}"
    if _git("rev-parse", "--git-dir").returncode == 0:
        assert _git("check-ignore", "-q", path).returncode == 1, f"{where}: {path} is ignored by git"


def test_readme_and_each_lesson_open_that_lesson_on_colab_and_binder():
    readme = {(kind, path) for kind, _, _, path in links((REPO / "README.md").read_text())}
    for lesson in LESSONS:
        own = {("colab", f"notebooks/{lesson}.ipynb"), ("binder", f"notebooks/{lesson}.ipynb")}
        assert own <= readme, f"README has no launch link of {lesson}"
        for kind, text in first_markdown(lesson).items():
            assert {(k, p) for k, _, _, p in links(text)} == own, f"{lesson}.{kind}: first cell's links"


def first_code_cells(lesson: str) -> dict:
    """The lesson's first code cell, from its notebook and from its .md source (read by jupytext)."""
    import jupytext
    notebooks = {"ipynb": nbformat.read(REPO / "notebooks" / f"{lesson}.ipynb", as_version=4),
                 "md": jupytext.read(REPO / "notebooks" / f"{lesson}.md")}
    return {kind: next(c for c in nb.cells if c.cell_type == "code") for kind, nb in notebooks.items()}


def test_the_install_cell_is_the_same_in_readme_and_every_lesson():
    cell = install_cell((REPO / "README.md").read_text())
    for lesson in LESSONS:
        for kind, first in first_code_cells(lesson).items():       # the lesson's first code cell, tagged
            assert first.source.strip() == cell.strip(), f"{lesson}.{kind}: another install cell than README's"
            assert "install" in first.metadata.get("tags", []), f"{lesson}.{kind}: the install cell is not tagged"
            assert not first.get("outputs"), f"{lesson}.{kind}: the install cell has outputs"
    assert 'find_spec("kd_lab") is None' in cell                  # does nothing where the course is installed
    assert "%pip install -q -e {COURSE}" in cell and "-m kd_lab teacher" in cell
    script = re.search(r"\{sys\.executable\} \{COURSE\}/(\S+\.py) fashion-mnist", cell)
    assert script and (REPO / script.group(1)).is_file()


def test_binder_installs_cpu_torch_at_the_locked_versions_and_runs_in_quick_mode():
    binder = REPO / "binder"
    lock = dict(line.split("==") for line in (REPO / "requirements" / "constraints.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    wanted = {line.split("==")[0]: line.split("==")[1] for line in (binder / "requirements.txt").read_text()
              .splitlines() if "==" in line and not line.startswith("#")}
    assert wanted == {"torch": lock["torch"] + "+cpu", "torchvision": lock["torchvision"] + "+cpu"}
    assert "https://download.pytorch.org/whl/cpu" in (binder / "requirements.txt").read_text()
    python = re.fullmatch(r"python-(\d+\.\d+)\s*", (binder / "runtime.txt").read_text()).group(1)
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(python + ".0")
    post_build, start = binder / "postBuild", binder / "start"
    assert os.access(post_build, os.X_OK) and os.access(start, os.X_OK)
    steps = post_build.read_text()
    assert "pip install --no-cache-dir -c requirements/constraints.txt -e ." in steps
    assert "python data_scripts/fetch.py fashion-mnist" in steps and (REPO / "data_scripts" / "fetch.py").is_file()
    assert 'export KD_LAB_QUICK="${KD_LAB_QUICK:-1}"' in start.read_text() and 'exec "$@"' in start.read_text()


def test_the_install_check_script_runs_readmes_cell():
    script = REPO / "tools" / "check_install.sh"
    assert os.access(script, os.X_OK)
    assert CELL_MARK in script.read_text() and CELL_MARK in (REPO / "README.md").read_text()


def test_the_install_cell_works_in_a_fresh_virtual_environment():
    """tools/check_install.sh: README's cell run by IPython in a new venv without the course, then the course used
    from a new process (about 1.5 min and 6 GB of temporary disk with this machine's local wheel index; the
    script removes its folder)."""
    done = subprocess.run([str(REPO / "tools" / "check_install.sh")], capture_output=True, text=True, timeout=900,
                          env={k: v for k, v in os.environ.items() if k not in ("KD_LAB_QUICK", "VIRTUAL_ENV")})
    assert done.returncode == 0, (done.stdout[-3000:], done.stderr[-3000:])
    assert "ok: the install cell works in a fresh virtual environment" in done.stdout
    assert re.search(r"kd_lab from .*kd_lab_course/kd_lab/__init__\.py: \d+ methods, 60000 training", done.stdout)
