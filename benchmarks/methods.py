"""Throughput of every method's training step on one device, in one table (lesson 06's cost column).

    python benchmarks/methods.py [METHOD,METHOD,...] [--device auto] [--images N] [--batch-size B]

Same as ``python -m kd_lab bench --methods``: one epoch per method through the comparison's path
(``kd_lab.experiments.train_method``) after a warm-up run, images/s and ms/step, and the ratio to the
first method (``scratch`` in the default course order) measured in the same run.
"""
import sys

from kd_lab.__main__ import main

if __name__ == "__main__":
    args = sys.argv[1:]
    methods = args.pop(0) if args and not args[0].startswith("-") else "all"
    sys.exit(main(["bench", "--methods", methods, *args]))
