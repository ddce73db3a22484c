#!/usr/bin/env bash
# The install path of a lesson opened where the course is missing (README, "Launch": the Colab cell), checked
# in a fresh virtual environment without the course:
#   1. a copy of what a clone of this repository holds (tracked files and new ones git does not ignore), made
#      into a git repository that stands for GitHub;
#   2. a fresh venv with only IPython (a notebook's kernel has it);
#   3. README's install cell, run by IPython with the clone's address pointed at that copy;
#   4. a new process: the cell again (a no-op now), then kd_lab.methods, the data and the teacher.
# The lock (requirements/constraints.txt) is the pip constraint of the run, so PyTorch comes from this machine's
# wheel index; LOCK=0 resolves from pyproject.toml's ranges alone.
# Usage: tools/check_install.sh [WORKDIR]   (default: a new temporary folder, removed at the end)
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="${1:-}"
if [ -z "$WORK" ]; then WORK="$(mktemp -d)"; trap 'rm -rf "$WORK"' EXIT; fi
mkdir -p "$WORK"
start=$(date +%s)
say() { echo "[check_install $(( $(date +%s) - start )) s] $*"; }

say "1. the repository's files -> $WORK/origin"
rm -rf "$WORK/origin" "$WORK/notebook" && mkdir -p "$WORK/origin" "$WORK/notebook"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard) |
  (cd "$REPO" && while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done) |
  (cd "$REPO" && xargs -0 cp --parents -t "$WORK/origin")
git -C "$WORK/origin" init -q -b main
git -C "$WORK/origin" add -A
git -C "$WORK/origin" -c user.name=check -c user.email=check@localhost commit -q -m "the working tree"

say "2. a fresh virtual environment with IPython only"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/python" -m pip install -q ipython
if (cd "$WORK/notebook" && "$WORK/venv/bin/python" -c "import kd_lab" 2>/dev/null); then
  echo "kd_lab is already importable"; exit 1
fi

say "3. README's install cell"
"$WORK/venv/bin/python" - "$REPO/README.md" "$WORK/origin" > "$WORK/notebook/cell.ipy" <<'EOF'
import re, sys
readme, origin = open(sys.argv[1]).read(), sys.argv[2]
cell = readme.split("<!-- colab-install-cell", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
print(re.sub(r"https://github\.com/[\w.-]+/[\w.-]+", origin, cell))
EOF
cat "$WORK/notebook/cell.ipy"
if [ "${LOCK:-1}" != 0 ]; then export PIP_CONSTRAINT="$REPO/requirements/constraints.txt"; fi
export KD_LAB_CACHE="$WORK/cache"
(cd "$WORK/notebook" && "$WORK/venv/bin/ipython" --no-banner cell.ipy)

say "4. a new process: the cell again, then the course"
cat "$WORK/notebook/cell.ipy" - > "$WORK/notebook/use.ipy" <<'EOF'
import kd_lab, kd_lab.methods
from pathlib import Path
from kd_lab import data, zoo
assert Path(kd_lab.__file__).resolve().is_relative_to(Path("kd_lab_course").resolve()), kd_lab.__file__
train, test = data.load("fashion-mnist")
teacher = zoo.get_teacher("fashion-mnist", device="cpu")
print(f"kd_lab from {kd_lab.__file__}: {len(kd_lab.methods.method_names())} methods, {len(train)} training "
      f"images, teacher at {100 * teacher.zoo_info['test_acc']:.2f} %")
EOF
(cd "$WORK/notebook" && "$WORK/venv/bin/ipython" --no-banner use.ipy)
"$WORK/venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(torch|torchvision|numpy|pandas|matplotlib|ipywidgets) '
du -sh "$WORK/venv"
say "ok: the install cell works in a fresh virtual environment"
