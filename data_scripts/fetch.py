#!/usr/bin/env python3
"""Fetch one data set of the course into the project's data folder, and say where its files came from.

    python data_scripts/fetch.py fashion-mnist        # also: mnist, cifar10

A thin wrapper over :func:`kd_lab.data.fetch`, which tries its sources in order and stops at the first that
gives complete files (right size and header): the data folder itself, the files of the Debian package
``dataset-fashion-mnist`` (Fashion-MNIST only), torchvision's download (10 s socket timeout), and, only
when asked (``--apt`` or ``KD_LAB_ALLOW_APT=1``), ``apt-get install dataset-fashion-mnist`` (as root, where
apt exists). A second run finds the files in place and does nothing; two runs at once fetch once (the
second waits for the first). Exit status: 0 when the files are there, 1 when every source failed (the message
lists each source and what to run), 2 for bad arguments (an unknown data set name lists the allowed ones).

Needs the installed ``kd_lab`` package (``make setup`` installs it into ``.venv/``).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    from kd_lab import data
except ModuleNotFoundError as err:          # a fresh clone before `make setup`
    sys.exit(f"fetch.py: cannot import kd_lab ({err}); run `make setup` first and use .venv/bin/python")

__all__ = ["build_parser", "main"]


def fetch(name: str, root: Path, *, download: bool, apt: bool | None) -> str:
    """Fetch ``name`` into ``root`` (:func:`kd_lab.data.fetch_report`); returns the source the files came from."""
    report = data.fetch_report(name, root, download=download, apt=apt, verbose=True)
    if report.source.startswith("data folder"):
        return "the data folder (already complete, nothing fetched)"
    return report.source


def _files(folder: Path) -> list[str]:
    """``relative/path  size`` of every file under ``folder``."""
    return [f"{p.relative_to(folder)}  {p.stat().st_size:,} bytes" for p in sorted(folder.rglob("*")) if p.is_file()]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="fetch.py", description="Fetch a data set of the course into the project's data folder "
        "(kd_lab.data.fetch) and print where its files came from.",
        epilog="Sources, in order: the data folder; the Debian package's files under "
        "/usr/share/datasets/fashion-mnist (fashion-mnist only); torchvision's download (10 s timeout); "
        "apt-get install dataset-fashion-mnist (fashion-mnist only, as root, with --apt). See "
        "data_scripts/README.md.")
    p.add_argument("name", choices=sorted(data.DATASETS), metavar="NAME",
                   help=f"the data set, one of: {', '.join(sorted(data.DATASETS))}")
    p.add_argument("--root", type=Path, default=None,
                   help=f"the data folder (default: $KD_LAB_DATA, else data/ at the repository root; "
                        f"here: {data.data_root()})")
    p.add_argument("--no-download", dest="download", action="store_false",
                   help="do not try torchvision's download (default: try it)")
    apt = p.add_mutually_exclusive_group()
    apt.add_argument("--apt", dest="apt", action="store_true", default=None,
                     help="as a last resort run apt-get install dataset-fashion-mnist (as root; default: only "
                          f"when ${data.APT_ENV}=1, else the message says what to install)")
    apt.add_argument("--no-apt", dest="apt", action="store_false", default=None,
                     help=f"never run apt-get, even with ${data.APT_ENV}=1")
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
