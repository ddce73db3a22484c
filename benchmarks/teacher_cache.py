"""Throughput of the teacher-using methods with and without the (image, view) teacher-output cache.

    python benchmarks/teacher_cache.py [--device auto] [--images 1000] [--batch-size 128]

Same as ``python -m kd_lab bench --methods scratch,kd,dkd,ssld,rkd-d,rkd-a,rkd,kd+rkd --images 1000``: one
epoch per method through the comparison's path with the teacher run every step, then the same epoch twice
with a ``kd_lab.teacher_cache.TeacherCache`` (cold: it computes the pairs it lacks; warm: the same seed draws
the same (image, view) pairs, all cached), each as images/s and as a ratio to scratch measured in the same run.
"""
import sys

from kd_lab.__main__ import main

METHODS = "scratch,kd,dkd,ssld,rkd-d,rkd-a,rkd,kd+rkd"

if __name__ == "__main__":
    args = sys.argv[1:]
    images = [] if "--images" in args else ["--images", "1000"]
    sys.exit(main(["bench", "--methods", METHODS, *images, *args]))
