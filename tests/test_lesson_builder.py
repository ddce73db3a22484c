"""tools/lesson_builder.py: a markdown-only rebuild keeps the executed outputs; a code change drops them."""
import sys
from pathlib import Path

import nbformat as nbf
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import lesson_builder  # noqa: E402


def _lesson(text: str, code: str = "print(1)") -> lesson_builder.Lesson:
    lesson = lesson_builder.Lesson("99_test.ipynb")
    lesson.md(text)
    lesson.code(code)
    return lesson


@pytest.fixture
def executed(tmp_path, monkeypatch):
    """A notebook written by the builder, then given an output as if it had been executed."""
    monkeypatch.setattr(lesson_builder, "NOTEBOOKS", tmp_path)
    path = _lesson("# before").write()
    nb = nbf.read(path, as_version=4)
    nb.cells[1].outputs = [nbf.v4.new_output("stream", name="stdout", text="1\n")]
    nb.cells[1].execution_count = 1
    nb.metadata["widgets"] = {"state": "kept"}
    nbf.write(nb, path)
    return path, nb


def test_markdown_change_keeps_outputs_ids_and_metadata(executed):
    path, before = executed
    _lesson("# after: what the run measured").write()
    nb = nbf.read(path, as_version=4)
    assert nb.cells[0].source == "# after: what the run measured"
    assert nb.cells[1].outputs[0]["text"] == "1\n" and nb.cells[1].execution_count == 1
    assert nb.cells[1].id == before.cells[1].id
    assert nb.metadata["widgets"] == {"state": "kept"}


def test_code_change_drops_every_output(executed):
    path, _ = executed
    _lesson("# before", code="print(2)").write()
    nb = nbf.read(path, as_version=4)
    assert nb.cells[1].outputs == [] and nb.cells[1].execution_count is None
    assert "widgets" not in nb.metadata
