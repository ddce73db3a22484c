"""Throughput benchmark of a KD epoch: kd_lab's fit against a tutorial-style DataLoader loop.

    python benchmarks/kd_epoch.py [--device auto] [--images N] [--teacher-recipe quick|full]

Same as ``python -m kd_lab bench``; prints a table with the ratio to the reference measured in the
same run.
"""
import sys

from kd_lab.__main__ import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
