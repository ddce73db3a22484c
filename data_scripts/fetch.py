#!/usr/bin/env python3
"""Fetch one data set of the course into the project's data folder, and say where its files came from.

    python data_scripts/fetch.py fashion-mnist        # also: mnist, cifar10

A thin wrapper over :func:`kd_lab.data.fetch`, which tries its sources in order and stops at the first that
gives complete files (right size and header): the data folder itself, the files of the Debian package
``dataset-fashion-mnist`` (Fashion-MNIST only), torchvision's download (10 s socket timeout), and
``apt-get install dataset-fashion-mnist`` (as root, where apt exists). A second run finds the files in place
and does nothing. Exit status: 0 when the files are there, 1 when every source failed (the message lists
each source and what to run), 2 for bad arguments (an unknown data set name lists the allowed ones).

Needs the installed ``kd_lab`` package (``make setup`` installs it into ``.venv/``).
"""
from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

try:
    from kd_lab import data
except ModuleNotFoundError as err:          # a fresh clone before `make setup`
    sys.exit(f"fetch.py: cannot import kd_lab ({err}); run `make setup` first and use .venv/bin/python")

__all__ = ["build_parser", "main"]


class _Tee(io.TextIOBase):
    """Writes through to ``stream`` and keeps a copy, to read :func:`kd_lab.data.fetch`'s log afterwards."""

    def __init__(self, stream):
        self.stream, self.parts = stream, []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def _last_source(log: str, name: str) -> str:
    """The source of fetch's last ``trying ...`` line: fetch stops at the first source that works."""
    prefix = f"[kd_lab] {name}: trying "
    tried = [line.removeprefix(prefix).removesuffix(" ...") for line in log.splitlines() if line.startswith(prefix)]
    return tried[-1] if tried else "unknown"


def fetch(name: str, root: Path, *, download: bool, apt: bool) -> str:
    """Fetch ``name`` into ``root`` (see :func:`kd_lab.data.fetch`); returns the source the files came from."""
    if data.is_complete(name, root):
        return "the data folder (already complete, nothing fetched)"
    tee = _Tee(sys.stdout)
    with contextlib.redirect_stdout(tee):
        data.fetch(name, root, download=download, apt=apt, verbose=True)
    return _last_source("".join(tee.parts), name)


def _files(folder: Path) -> list[str]:
    """``relative/path  size`` of every file under ``folder``."""
    return [f"{p.relative_to(folder)}  {p.stat().st_size:,} bytes" for p in sorted(folder.rglob("*")) if p.is_file()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fetch.py", description="Fetch a data set of the course into the project's data folder "
        "(kd_lab.data.fetch) and print where its files came from.",
        epilog="Sources, in order: the data folder; the Debian package's files under "
        "/usr/share/datasets/fashion-mnist (fashion-mnist only); torchvision's download (10 s timeout); "
        "apt-get install dataset-fashion-mnist (fashion-mnist only, as root). See data_scripts/README.md.")
    p.add_argument("name", choices=sorted(data.DATASETS), metavar="NAME",
                   help=f"the data set, one of: {', '.join(sorted(data.DATASETS))}")
    p.add_argument("--root", type=Path, default=None,
                   help=f"the data folder (default: $KD_LAB_DATA, else data/ at the repository root; "
                        f"here: {data.data_root()})")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="do not try torchvision's download (default: try it)")
    p.add_argument("--no-apt", dest="apt", action="store_false",
                   help="do not try apt-get install (default: try it where apt exists and this runs as root)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    root = args.root or data.data_root()
    try:
        source = fetch(args.name, root, download=args.download, apt=args.apt)
    except data.DataUnavailableError as err:
        print(f"fetch.py: {err}", file=sys.stderr)
        return 1
    folder = root / data.DATASETS[args.name].folder
    print(f"{args.name}: files from {source}")
    print(f"folder: {folder}")
    for line in _files(folder):
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
