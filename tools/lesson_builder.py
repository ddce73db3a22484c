"""Shared by the tools/build_lesson_NN.py scripts: collect markdown and code cells, write the notebook.

Each lesson is kept as plain-text cells in its build script so that it can be reviewed like code. After
editing a script, run it, then execute the notebook in full mode to refresh the committed outputs:

    .venv/bin/python tools/build_lesson_NN.py
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 \\
        --ExecutePreprocessor.store_widget_state=True notebooks/NN_topic.ipynb

When only markdown changed (every code cell is the same as in the notebook on disk, in the same order), the
rebuilt notebook keeps the outputs of the executed one, so that the text can state what a full-mode run
measured without running it again. Any change to a code cell drops every output.
"""
from pathlib import Path

import nbformat as nbf

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _code_sources(cells) -> list[str]:
    return [c.source for c in cells if c.cell_type == "code"]


class Lesson:
    """An ordered list of cells that becomes ``notebooks/<name>``."""

    def __init__(self, name: str):
        self.name, self.cells = name, []

    def md(self, text: str) -> None:
        self.cells.append(nbf.v4.new_markdown_cell(text.strip()))

    def code(self, text: str) -> None:
        self.cells.append(nbf.v4.new_code_cell(text.strip()))

    def _keep_outputs(self, old: nbf.NotebookNode) -> bool:
        """Copy outputs from ``old`` when its code cells equal ours; True when it did."""
        if _code_sources(old.cells) != _code_sources(self.cells):
            return False
        executed = iter(c for c in old.cells if c.cell_type == "code")
        for cell in self.cells:
            if cell.cell_type == "code":
                before = next(executed)
                cell.outputs, cell.execution_count = before.outputs, before.execution_count
                cell.id, cell.metadata = before.id, before.metadata
        old_md = {c.source: c.id for c in old.cells if c.cell_type == "markdown"}
        for cell in self.cells:
            if cell.cell_type == "markdown" and cell.source in old_md:
                cell.id = old_md[cell.source]                      # unchanged text keeps its id
        return True

    def write(self) -> Path:
        nb = nbf.v4.new_notebook()
        nb.cells = self.cells
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        out = NOTEBOOKS / self.name
        kept = False
        if out.exists():
            old = nbf.read(out, as_version=4)
            kept = self._keep_outputs(old)
            if kept:
                nb.metadata = old.metadata                          # kernel, language version, widget state
        nbf.write(nb, out)
        print(f"wrote {out} ({len(self.cells)} cells{', outputs kept' if kept else ''})")
        return out
