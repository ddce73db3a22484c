"""The lessons' two files, the hash that ties a notebook's outputs to its code, and the commands that write them.

Each lesson is a pair kept in sync by jupytext (``notebooks/jupytext.toml``):

* ``notebooks/NN_topic.md`` — the source: prose and code cells in MyST Markdown, what an instructor edits
  (in JupyterLab or any editor) and reviews as text;
* ``notebooks/NN_topic.ipynb`` — the same cells with the outputs of a full-mode run, what students open.

**Outputs belong to their code.** When a lesson is executed, its notebook records which code made its outputs,
in ``metadata["kd_lab"]["code_sha256"]``: the SHA-256 (hex) of the UTF-8 text made of the sources of the
notebook's code cells, in notebook order, each normalised — trailing whitespace removed from every line, blank
lines removed at both ends — and followed by one NUL character (``"\\0"``). Markdown cells do not enter it, nor
does the install cell (tagged ``install``: it installs the course where it is missing, as on Colab, and does
nothing where the course is installed, so it makes no output to tie).
``tests/test_lessons_sync.py`` checks, for every lesson, that the .md's code cells still have that hash and that
the .ipynb's code cells are the .md's: a code edit needs a new run, a prose edit does not.

    python tools/lessons.py execute 01   # make lesson N=01: .md -> .ipynb, run in full mode, stamp, .ipynb -> .md
    python tools/lessons.py sync [01]    # make lessons-sync: carry prose edits of the .md into the .ipynb
    python tools/lessons.py check [01]   # what the test checks, for one lesson or all

Needs jupytext, nbformat and nbconvert (the ``dev`` extra), not kd_lab.
"""
import argparse
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat

__all__ = ["NOTEBOOKS", "CodeChanged", "code_sha256", "code_sources", "execute", "find_lesson", "lessons",
           "normalise", "problems", "recorded_sha256", "stamp", "sync"]

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


class CodeChanged(RuntimeError):
    """A lesson's .md has other code cells than its notebook: only a new run can carry them over."""


def normalise(source: str) -> str:
    """A code cell's source without trailing whitespace on any line, nor blank lines at either end."""
    return "\n".join(line.rstrip() for line in source.splitlines()).strip("\n")


INSTALL_TAG = "install"


def code_sources(nb: nbformat.NotebookNode) -> list[str]:
    """The normalised sources of the notebook's code cells, in order, except the install cell (:data:`INSTALL_TAG`)."""
    return [normalise(cell.source) for cell in nb.cells
            if cell.cell_type == "code" and INSTALL_TAG not in cell.get("metadata", {}).get("tags", [])]


def code_sha256(nb: nbformat.NotebookNode) -> str:
    """SHA-256 of the code cells: each normalised source followed by a NUL character, UTF-8 (module docstring)."""
    text = "".join(source + "\0" for source in code_sources(nb))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def recorded_sha256(nb: nbformat.NotebookNode) -> str | None:
    """The code hash stamped into the notebook when it was last executed, or None."""
    return nb.metadata.get("kd_lab", {}).get("code_sha256")


def stamp(ipynb: Path) -> str:
    """Record the hash of the notebook's code cells in its metadata; call it only right after executing it."""
    nb = nbformat.read(ipynb, as_version=4)
    nb.metadata.setdefault("kd_lab", {})["code_sha256"] = digest = code_sha256(nb)
    nbformat.write(nb, ipynb)
    return digest


def _number(md: Path) -> str:
    return md.name.split("_")[0]


def lessons(folder: Path = NOTEBOOKS) -> list[Path]:
    """The lessons' Markdown sources, ``NN_topic.md``, in order."""
    return sorted(Path(folder).glob("[0-9][0-9]_*.md"))


def find_lesson(number: str, folder: Path = NOTEBOOKS) -> Path:
    """The .md source of lesson ``number`` ("01" or "1")."""
    found = {_number(md): md for md in lessons(folder)}
    key = number.zfill(2) if number.isdigit() else number
    if key not in found:
        raise ValueError(f"no lesson {number!r} in {folder}: choose one of {', '.join(found) or '(none)'}")
    return found[key]


def _first_difference(a: list[str], b: list[str]) -> int:
    """1-based index of the first code cell that differs (or is missing in one of the lists)."""
    return next((i for i, (x, y) in enumerate(zip(a, b), 1) if x != y), min(len(a), len(b)) + 1)


def problems(md: Path) -> list[str]:
    """What is out of sync in one lesson: its notebook's outputs against the .md's code, and the two files' code."""
    n, ipynb = _number(md), md.with_suffix(".ipynb")
    if not ipynb.is_file():
        return [f"lesson {n}: {md.name} has no notebook {ipynb.name} — run `make lesson N={n}`"]
    source, notebook = jupytext.read(md), nbformat.read(ipynb, as_version=4)
    found, recorded = [], recorded_sha256(notebook)
    if recorded is None:
        found.append(f"lesson {n}: {ipynb.name} records no code hash (not executed by `make lesson`) — "
                     f"run `make lesson N={n}`")
    elif code_sha256(source) != recorded:
        found.append(f"lesson {n}: code changed since its outputs were made — run `make lesson N={n}`")
    md_code, nb_code = code_sources(source), code_sources(notebook)
    if md_code != nb_code:
        found.append(f"lesson {n}: the code cells of {ipynb.name} differ from {md.name} (from code cell "
                     f"{_first_difference(md_code, nb_code)} on) — the .md is the source: put the change there "
                     f"and run `make lesson N={n}`")
    return found


def _run(*args: str, env: dict[str, str] | None = None) -> None:
    """``python -m ARGS`` with this interpreter, echoed first; stops on failure."""
    print("python -m", *args, flush=True)
    subprocess.run([sys.executable, "-m", *args], check=True, env=env)


def sync(md: Path) -> Path:
    """Carry the prose of ``md`` into its notebook, keeping every output and the recorded hash; no execution.

    Raises CodeChanged when the code cells differ: their outputs would be dropped (``make lesson`` is needed)."""
    n, ipynb = _number(md), md.with_suffix(".ipynb")
    if not ipynb.is_file():
        raise CodeChanged(f"lesson {n}: {md.name} has no notebook {ipynb.name} yet — run `make lesson N={n}`")
    if code_sources(jupytext.read(md)) != code_sources(nbformat.read(ipynb, as_version=4)):
        raise CodeChanged(f"lesson {n}: the code of {md.name} is not that of {ipynb.name}, and a sync carries "
                          f"prose only — run `make lesson N={n}`")
    _run("jupytext", "--quiet", "--update", "--to", "ipynb", str(md))   # the .md's cells, the .ipynb's outputs
    return ipynb


def execute(md: Path) -> Path:
    """``make lesson``: the .md's cells into the notebook, run it in full mode, stamp the hash, rewrite the .md."""
    ipynb = md.with_suffix(".ipynb")
    _run("jupytext", "--quiet", "--update", "--to", "ipynb", str(md))
    print(f"{ipynb.name}: running in full mode (reference mode: a few minutes; a first-edition lesson 20-35 min "
          "on a 2-core CPU)", flush=True)
    start = time.perf_counter()
    _run("nbconvert", "--to", "notebook", "--execute", "--inplace",
         "--ExecutePreprocessor.timeout=-1",                # no time limit
         "--ExecutePreprocessor.store_widget_state=True", str(ipynb),
         env={key: value for key, value in os.environ.items() if key != "KD_LAB_QUICK"})    # full mode
    print(f"{ipynb.name}: Run All from a fresh kernel took {time.perf_counter() - start:.0f} s (kernel start included)")
    print(f"{ipynb.name}: code_sha256 {stamp(ipynb)}")
    _run("jupytext", "--quiet", "--to", "md:myst", str(ipynb))   # written last: the .md is the newer of the pair
    return ipynb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help="the lessons' folder (default: %(default)s)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("execute", help="run one lesson in full mode and write its pair").add_argument("lesson")
    for name, text in (("sync", "carry prose edits of the .md into the .ipynb"), ("check", "what is out of sync")):
        commands.add_parser(name, help=text).add_argument("lesson", nargs="?", help="a lesson number (default: all)")
    args = parser.parse_args(argv)
    try:
        chosen = [find_lesson(args.lesson, args.notebooks)] if args.lesson else lessons(args.notebooks)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    if args.command == "execute":
        execute(chosen[0])
        return 0
    found = []
    for md in chosen:
        if args.command == "check":
            found += problems(md)
            continue
        try:
            sync(md)
        except CodeChanged as error:
            found.append(str(error))
    print("\n".join(found) or f"{len(chosen)} lesson(s) in sync", file=sys.stderr if found else sys.stdout)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
