"""Importing kd_lab changes no global state: no seeding, no rcParams, no pyplot, no thread settings (every
module, subpackages included, but the command line ``kd_lab.__main__``)."""
import subprocess
import sys

SCRIPT = r"""
import torch, matplotlib
rng, threads = torch.get_rng_state().clone(), torch.get_num_threads()
rc = {k: v for k, v in dict.items(matplotlib.rcParams) if k != "backend"}
import importlib, pkgutil, kd_lab
names = [m.name for m in pkgutil.walk_packages(kd_lab.__path__, "kd_lab.") if m.name != "kd_lab.__main__"]
for name in names:
    importlib.import_module(name)
assert {"kd_lab.compare", "kd_lab.results", "kd_lab.stats", "kd_lab.widgets", "kd_lab.bench"} <= set(names), names
assert torch.equal(rng, torch.get_rng_state()), "the torch RNG was touched"
assert torch.get_num_threads() == threads, "the thread count changed"
assert {k: v for k, v in dict.items(matplotlib.rcParams) if k != "backend"} == rc, "rcParams changed"
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
print("clean")
"""


def test_importing_every_module_leaves_global_state_alone():
    done = subprocess.run([sys.executable, "-c", "import sys\n" + SCRIPT], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "clean"
