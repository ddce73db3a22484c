"""Importing kd_lab changes no global state: no seeding, no rcParams, no pyplot, no thread settings."""
import subprocess
import sys

SCRIPT = r"""
import torch, matplotlib
rng, threads = torch.get_rng_state().clone(), torch.get_num_threads()
rc = {k: v for k, v in dict.items(matplotlib.rcParams) if k != "backend"}
import kd_lab, kd_lab.data, kd_lab.models, kd_lab.losses, kd_lab.methods, kd_lab.train, kd_lab.zoo
import kd_lab.viz, kd_lab.widgets, kd_lab.exercises, kd_lab.analysis, kd_lab.experiments, kd_lab.bench
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
