"""tools/lessons.py: each lesson's notebook holds the outputs of its Markdown source's code; a prose edit is
carried over without a run, a code edit is caught; `make lesson` runs a notebook in full mode and stamps it."""
import shutil
import sys
from pathlib import Path

import jupytext
import nbformat as nbf
import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
sys.path.insert(0, str(REPO / "tools"))
import lessons  # noqa: E402

LESSONS = sorted(p.stem for p in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
CODE_CHANGED = "lesson 06: code changed since its outputs were made — run `make lesson N=06`"


def test_every_notebook_is_paired_with_its_markdown_source():
    assert len(LESSONS) >= 6
    assert [md.stem for md in lessons.lessons(NOTEBOOKS)] == LESSONS
    assert (NOTEBOOKS / "jupytext.toml").read_text().count('formats = "ipynb,md:myst"') == 1


@pytest.mark.parametrize("stem", LESSONS)
def test_lesson_outputs_were_made_by_its_code(stem):
    md = NOTEBOOKS / f"{stem}.md"
    assert lessons.problems(md) == []
    notebook = nbf.read(md.with_suffix(".ipynb"), as_version=4)
    assert [c.source for c in jupytext.read(md).cells] == [c.source for c in notebook.cells]   # prose too
    assert all(c.execution_count for c in notebook.cells if c.cell_type == "code"                 # executed,
               and lessons.INSTALL_TAG not in c.metadata.get("tags", []))                        # but install


def _notebook(*cells) -> nbf.NotebookNode:
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_code_cell(src) if kind == "code" else nbf.v4.new_markdown_cell(src) for kind, src in cells]
    return nb


def test_code_hash_ignores_prose_and_trailing_whitespace_not_code():
    base = lessons.code_sha256(_notebook(("md", "# one"), ("code", "x = 1\nprint(x)")))
    assert lessons.code_sha256(_notebook(("md", "# two"), ("code", "\nx = 1   \nprint(x)\t\n\n"))) == base
    assert lessons.code_sha256(_notebook(("code", "x = 2\nprint(x)"))) != base
    assert lessons.code_sha256(_notebook(("code", "x = 1"), ("code", "print(x)"))) != base    # cell boundaries
    assert lessons.code_sha256(_notebook(("code", "print(x)\nx = 1"))) != base                  # order
    assert lessons.code_sha256(_notebook()) != lessons.code_sha256(_notebook(("code", "")))


def test_the_install_cell_does_not_enter_the_hash_other_tagged_cells_do():
    base = lessons.code_sha256(_notebook(("code", "x = 1")))
    nb = _notebook(("code", "%pip install kd_lab"), ("code", "x = 1"))
    nb.cells[0].metadata["tags"] = ["install"]
    assert lessons.code_sha256(nb) == base and lessons.code_sources(nb) == ["x = 1"]
    nb.cells[0].metadata["tags"] = ["hide-input"]
    assert lessons.code_sha256(nb) != base


@pytest.fixture
def lesson_copy(tmp_path) -> Path:
    """A copy of lesson 06's pair (and the jupytext config) in a temporary folder; returns its .md."""
    for name in ("06_compare.md", "06_compare.ipynb", "jupytext.toml"):
        shutil.copy(NOTEBOOKS / name, tmp_path / name)
    return tmp_path / "06_compare.md"


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, old
    path.write_text(text.replace(old, new, 1))


def _first_code_line(md: Path) -> str:
    """The first line of the first code cell that enters the hash (the install cell does not)."""
    return lessons.code_sources(jupytext.read(md))[0].splitlines()[0]


def test_a_code_edit_in_the_markdown_fails(lesson_copy):
    line = _first_code_line(lesson_copy)
    _edit(lesson_copy, line + "\n", line + "  # edited\n")
    found = lessons.problems(lesson_copy)
    assert CODE_CHANGED in found
    assert any("the code cells of 06_compare.ipynb differ from 06_compare.md (from code cell 1 on)" in p for p in found)


def test_a_prose_edit_in_the_markdown_passes(lesson_copy):
    _edit(lesson_copy, "# Lesson 06", "# Lesson 06 (edited prose, and trailing spaces)   ")
    assert lessons.problems(lesson_copy) == []


def test_a_code_edit_in_the_notebook_fails(lesson_copy):
    ipynb = lesson_copy.with_suffix(".ipynb")
    nb = nbf.read(ipynb, as_version=4)
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    last.source += "\nprint('edited')"
    nbf.write(nb, ipynb)
    found = lessons.problems(lesson_copy)
    assert len(found) == 1 and "06_compare.ipynb differ from 06_compare.md" in found[0]


def test_a_notebook_without_a_recorded_hash_fails(lesson_copy):
    ipynb = lesson_copy.with_suffix(".ipynb")
    nb = nbf.read(ipynb, as_version=4)
    del nb.metadata["kd_lab"]
    nbf.write(nb, ipynb)
    assert lessons.problems(lesson_copy) == [
        "lesson 06: 06_compare.ipynb records no code hash (not executed by `make lesson`) — run `make lesson N=06`"]


def test_sync_carries_prose_and_keeps_outputs_and_hash(lesson_copy):
    ipynb = lesson_copy.with_suffix(".ipynb")
    before = nbf.read(ipynb, as_version=4)
    _edit(lesson_copy, "# Lesson 06", "# Lesson 06, edited")
    lessons.sync(lesson_copy)
    after = nbf.read(ipynb, as_version=4)
    assert after.cells[0].source.startswith("# Lesson 06, edited")
    assert [c for c in after.cells if c.cell_type == "code"] == [c for c in before.cells if c.cell_type == "code"]
    assert after.metadata == before.metadata and lessons.problems(lesson_copy) == []


def test_sync_refuses_a_code_edit_and_writes_nothing(lesson_copy):
    ipynb = lesson_copy.with_suffix(".ipynb")
    before = ipynb.read_bytes()
    line = _first_code_line(lesson_copy)
    _edit(lesson_copy, line + "\n", line + "\nprint('new')\n")
    with pytest.raises(lessons.CodeChanged, match=r"a sync carries prose only — run `make lesson N=06`"):
        lessons.sync(lesson_copy)
    assert ipynb.read_bytes() == before
    assert lessons.main(["--notebooks", str(lesson_copy.parent), "sync"]) == 1


def test_find_lesson_names_the_bad_number_and_the_lessons(lesson_copy):
    assert lessons.find_lesson("6", lesson_copy.parent) == lessons.find_lesson("06", lesson_copy.parent)
    with pytest.raises(ValueError, match=r"no lesson '7' in .*: choose one of 06"):
        lessons.find_lesson("7", lesson_copy.parent)


def test_execute_runs_in_full_mode_stores_widgets_stamps_and_writes_the_pair(tmp_path, monkeypatch):
    """`make lesson` on a tiny lesson whose notebook holds outputs of older code."""
    monkeypatch.setenv("KD_LAB_QUICK", "1")                 # the run must drop it: lessons run in full mode
    shutil.copy(NOTEBOOKS / "jupytext.toml", tmp_path / "jupytext.toml")
    old = _notebook(("md", "# Tiny lesson"), ("code", "print('old code')"))
    old.cells[1].outputs = [nbf.v4.new_output("stream", name="stdout", text="old code\n")]
    old.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbf.write(old, tmp_path / "99_tiny.ipynb")
    source = _notebook(("md", "# Tiny lesson, new prose"),
                       ("code", "import os\nprint('quick mode:', os.environ.get('KD_LAB_QUICK'))"),
                       ("code", "import ipywidgets\nipywidgets.IntSlider(value=3)"))
    source.metadata["kernelspec"] = old.metadata["kernelspec"]
    md = tmp_path / "99_tiny.md"
    jupytext.write(source, md, fmt="md:myst")
    assert lessons.problems(md)                              # old outputs: out of sync before the run

    assert lessons.main(["--notebooks", str(tmp_path), "execute", "99"]) == 0
    nb = nbf.read(tmp_path / "99_tiny.ipynb", as_version=4)
    assert [c.source for c in nb.cells] == [c.source for c in source.cells]
    assert nb.cells[1].outputs[0]["text"] == "quick mode: None\n"
    assert "application/vnd.jupyter.widget-view+json" in nb.cells[2].outputs[0]["data"]
    assert nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert nb.metadata["kd_lab"]["code_sha256"] == lessons.code_sha256(source)
    assert lessons.problems(md) == []
    assert md.stat().st_mtime >= (tmp_path / "99_tiny.ipynb").stat().st_mtime    # the .md is the newer file
