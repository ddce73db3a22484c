"""Shared by the tools/build_lesson_NN.py scripts: collect markdown and code cells, write the notebook.

Each lesson is kept as plain-text cells in its build script so that it can be reviewed like code. After
editing a script, run it, then execute the notebook in full mode to refresh the committed outputs:

    .venv/bin/python tools/build_lesson_NN.py
    .venv/bin/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=-1 \\
        --ExecutePreprocessor.store_widget_state=True notebooks/NN_topic.ipynb
"""
from pathlib import Path

import nbformat as nbf

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class Lesson:
    """An ordered list of cells that becomes ``notebooks/<name>``."""

    def __init__(self, name: str):
        self.name, self.cells = name, []

    def md(self, text: str) -> None:
        self.cells.append(nbf.v4.new_markdown_cell(text.strip()))

    def code(self, text: str) -> None:
        self.cells.append(nbf.v4.new_code_cell(text.strip()))

    def write(self) -> Path:
        nb = nbf.v4.new_notebook()
        nb.cells = self.cells
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        out = NOTEBOOKS / self.name
        nbf.write(nb, out)
        print(f"wrote {out} ({len(self.cells)} cells)")
        return out
