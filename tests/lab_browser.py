"""Drive the lessons the way students use them: JupyterLab in Chromium, through Playwright.

:class:`LabServer` starts JupyterLab on a free loopback port with a random token and throw-away settings,
workspaces, runtime and IPython folders, and stops it (and its kernels) with its whole process group.
:class:`LessonPage` opens a notebook in it and uses the UI: the Run menu, ipywidgets sliders and buttons,
screenshots of widget outputs. Used by ``tests/test_browser.py``.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from io import BytesIO
from pathlib import Path

try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
except ImportError:                                     # the tests skip (or fail when required) without it
    PlaywrightTimeout = TimeoutError

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WAIT_MS = 120_000                     # Playwright timeouts: generous, the machine may have 2 busy cores

# JupyterLab user settings: no news or update pop-ups, every cell in the DOM (no windowing).
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                         "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
}


def find_chromium() -> str | None:
    """``KD_LAB_CHROMIUM`` when set, else the first Chromium or Chrome on ``PATH``."""
    if os.environ.get("KD_LAB_CHROMIUM"):
        return os.environ["KD_LAB_CHROMIUM"]
    return next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)


def copy_lessons(source: Path, target: Path) -> Path:
    """Copy the notebooks with outputs, execution counts and saved widget state cleared, so that every
    prompt number and widget the test sees comes from its own run."""
    target.mkdir(parents=True)
    for path in sorted(Path(source).glob("*.ipynb")):
        nb = json.loads(path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        nb["metadata"].pop("widgets", None)
        (target / path.name).write_text(json.dumps(nb, ensure_ascii=False, indent=1))
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabServer:
    """JupyterLab serving ``root`` (a folder of notebooks) with its own folders under ``home``."""

    def __init__(self, root: Path, home: Path, env: dict | None = None):
        self.root, self.home = Path(root), Path(home)
        self.port, self.token = free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {}), **self._folders()}
        self.log = self.home / "jupyterlab.log"
        self.proc: subprocess.Popen | None = None
        self.kernel_pids: list[int] = []

    def _folders(self) -> dict:
        names = {"JUPYTER_CONFIG_DIR": "config", "JUPYTER_DATA_DIR": "data", "JUPYTER_RUNTIME_DIR": "runtime",
                 "JUPYTERLAB_SETTINGS_DIR": "settings", "JUPYTERLAB_WORKSPACES_DIR": "workspaces",
                 "IPYTHONDIR": "ipython"}
        folders = {var: self.home / name for var, name in names.items()}
        for folder in folders.values():
            folder.mkdir(parents=True, exist_ok=True)
        for rel, value in LAB_SETTINGS.items():
            path = folders["JUPYTERLAB_SETTINGS_DIR"] / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        return {var: str(folder) for var, folder in folders.items()}

    def command(self) -> list[str]:
        args = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}", "--LabApp.news_url=None",
                "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
        return args + (["--allow-root"] if os.getuid() == 0 else [])

    def start(self, timeout: float = 120) -> LabServer:
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(self.command(), cwd=self.root, env=self.env, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("status")
                return self
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"JupyterLab did not answer on {self.url} within {timeout:.0f} s:\n{self.log_tail()}")

    def api(self, path: str, method: str = "GET"):
        """Call the server's REST API with the token; returns the decoded JSON (None when empty)."""
        request = urllib.request.Request(f"{self.url}/api/{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def shutdown_kernels(self) -> None:
        for kernel in self.api("kernels"):
            self.api(f"kernels/{kernel['id']}", method="DELETE")

    def stop(self) -> None:
        """Shut the kernels down, stop the server's process group (SIGTERM, then SIGKILL), then kill any
        kernel left: kernels run in sessions of their own, which a killed server cannot stop."""
        if self.proc is None or self.proc.poll() is not None:
            return
        kernels = self.kernel_pids = list(kernel_processes(self))
        try:
            self.shutdown_kernels()
        except OSError:
            pass                                                # the group is stopped below all the same
        _stop_group(self.proc.pid, lambda t: self.proc.wait(timeout=t))
        for pid in kernels:
            _stop_group(pid, lambda t, pid=pid: _wait_gone(pid, t))

    def leftovers(self) -> list[int]:
        """The server and kernel processes still alive (after :meth:`stop`: none)."""
        alive = [] if self.proc is None or self.proc.poll() is not None else [self.proc.pid]
        return alive + [pid for pid in self.kernel_pids if _state(pid) not in ("Z", "gone")]

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def count_changed_pixels(png_a: bytes, png_b: bytes) -> int:
    """How many pixels differ between two screenshots (all of them when the sizes differ)."""
    from PIL import Image, ImageChops

    a, b = (Image.open(BytesIO(png)).convert("RGB") for png in (png_a, png_b))
    if a.size != b.size:
        return max(a.size[0] * a.size[1], b.size[0] * b.size[1])
    diff = ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > 16 else 0)
    return diff.histogram()[255]


# The JavaScript side: the prompts and tracebacks of the notebook's code cells number ``which``, from the DOM.
_CELLS_STATE = """(which) => {
  const cells = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell')];
  const code = which.map(i => cells[i]).filter(c => c && c.classList.contains('jp-CodeCell'));
  const prompts = code.map(c => (c.querySelector('.jp-InputPrompt') || {}).textContent || '');
  const errors = code.flatMap(c => [...c.querySelectorAll('.jp-OutputArea-output')]
      .map(o => o.textContent).filter(t => t.includes('Traceback (most recent call last)')));
  return {prompts, errors, done: prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p))};
}"""


class LessonPage:
    """One notebook open in JupyterLab, in a Chromium page, driven through the UI."""

    def __init__(self, page, server: LabServer, notebook: str, artifacts: Path):
        self.page, self.server, self.notebook = page, server, notebook
        self.stem, self.artifacts, self.step = Path(notebook).stem, artifacts, 0
        page.set_default_timeout(WAIT_MS)

    def open(self) -> None:
        """Open the notebook in a fresh workspace and wait until its kernel is idle."""
        self.page.goto(f"{self.server.url}/lab/workspaces/{self.stem}/tree/{self.notebook}"
                       f"?reset&token={self.server.token}")
        self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").first.wait_for()
        self.page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']").wait_for()

    def cell_index(self, text: str) -> int:
        """The index of the first cell whose source contains ``text``."""
        sources = self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell .jp-InputArea-editor")
        for i, source in enumerate(sources.all_inner_texts()):
            if text in source:
                return i
        raise AssertionError(f"{self.notebook}: no cell contains {text!r}")

    def cell(self, index: int):
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").nth(index)

    def menu(self, top: str, item: str) -> None:
        """Click a main-menu item by its labels, e.g. ``menu("Run", "Run All Cells")``."""
        self.page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=top).first.click()
        label = self.page.locator(".lm-Menu-itemLabel", has_text=re.compile(f"^{re.escape(item)}$"))
        self.page.locator(".lm-Menu-item:not(.lm-mod-disabled)", has=label).click()

    def cell_count(self) -> int:
        return self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").count()

    def run_all(self, timeout_s: float) -> None:
        """Run > Run All Cells, and wait until every code cell ran without an error."""
        self.menu("Run", "Run All Cells")
        self.wait_cells(range(self.cell_count()), timeout_s)

    def run_through(self, index: int, timeout_s: float) -> None:
        """Select cell ``index``, Run > Run All Above Selected Cell, then run that cell (Ctrl+Enter)."""
        if index > 0:
            self.select(index)
            self.menu("Run", "Run All Above Selected Cell")
        self.run_cells([index], timeout_s)

    def run_cells(self, indices, timeout_s: float) -> None:
        """Select each cell in turn and press Ctrl+Enter (the kernel queues them); wait for them all."""
        for i in indices:
            self.select(i)
            self.page.keyboard.press("Control+Enter")
        self.wait_cells(indices, timeout_s)

    def first_code_cell(self) -> int:
        """The lesson's set-up: its first code cell after the install cell (which does nothing here)."""
        kinds = self.page.locator(".jp-NotebookPanel .jp-Notebook .jp-Cell").evaluate_all(
            "cells => cells.map(c => c.classList.contains('jp-CodeCell')"
            " && !c.textContent.includes('Colab, or any Jupyter without the course'))")
        return kinds.index(True)

    def select(self, index: int) -> None:
        self.cell(index).locator(".jp-InputPrompt").click()

    def wait_cells(self, indices, timeout_s: float) -> None:
        """Wait until the code cells ``indices`` have run (a number in their prompt); fail on a traceback."""
        which = list(indices)
        check = f"(which) => {{ const s = ({_CELLS_STATE})(which); return (s.done || s.errors.length) ? s : false; }}"
        try:
            state = self.page.wait_for_function(check, arg=which, timeout=timeout_s * 1000, polling=500).json_value()
        except PlaywrightTimeout:
            state = self.page.evaluate(_CELLS_STATE, which)
            ran = sum(bool(re.search(r"\[\d+\]", p)) for p in state["prompts"])
            raise AssertionError(f"{self.notebook}: after {timeout_s:.0f} s, {ran} of {len(state['prompts'])} "
                                 f"code cells had run; prompts: {' '.join(state['prompts'])}") from None
        assert not state["errors"], f"{self.notebook}: a cell failed:\n" + "\n".join(state["errors"])[-3000:]

    def shot(self, locator, name: str) -> bytes:
        """Screenshot of ``locator``, saved as ``<lesson>-<NN>-<name>.png`` among the artifacts."""
        self.step += 1
        png = locator.screenshot(animations="disabled")
        (self.artifacts / f"{self.stem}-{self.step:02d}-{name}.png").write_bytes(png)
        return png

    def page_shot(self, name: str) -> None:
        self.step += 1
        self.page.screenshot(path=self.artifacts / f"{self.stem}-{self.step:02d}-{name}.png", full_page=True)


def kernel_executables(server: LabServer, timeout_s: float = 60) -> list[str]:
    """The programs (argv[0]) of the kernels the server started, once one is idle (read from ``/proc``)."""
    deadline = time.monotonic() + timeout_s
    while not _kernel_idle(server) or not kernel_processes(server):
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    return list(kernel_processes(server).values())


def _kernel_idle(server: LabServer) -> bool:
    try:
        return any(k["execution_state"] == "idle" for k in server.api("kernels"))
    except OSError:             # jupyter_server answers 500 while a kernel is starting (no last_activity yet)
        return False


def kernel_processes(server: LabServer) -> dict[int, str]:
    """pid -> argv[0] of the ipykernel processes whose parent is the server (Linux ``/proc``)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            argv = (stat.parent / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError, IndexError):
            continue                                            # the process ended meanwhile
        if ppid == server.proc.pid and any(b"ipykernel" in a for a in argv):
            found[int(stat.parent.name)] = argv[0].decode()
    return found


def _stop_group(pgid: int, wait) -> None:
    """SIGTERM the process group, ``wait(seconds)`` for it, then SIGKILL it."""
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(pgid, sig)
            wait(wait_s)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def _wait_gone(pid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and _state(pid) != "Z":
        if time.monotonic() > deadline:
            raise subprocess.TimeoutExpired(f"pid {pid}", timeout_s)
        time.sleep(0.2)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "gone"


def slider(panel, label: str):
    """The ipywidgets slider of ``panel`` whose description is ``label``."""
    return panel.locator(".widget-slider", has=panel.page.locator(".widget-label", has_text=label)).first


def drag_slider(page, panel, label: str, fraction: float) -> tuple[str, str]:
    """Drag the slider's handle by ``fraction`` of its width with the mouse; returns its readout before and after."""
    s = slider(panel, label)
    handle, readout = s.locator(".noUi-handle"), s.locator(".widget-readout")
    handle.scroll_into_view_if_needed()
    before = readout.inner_text().strip()
    box, track = handle.bounding_box(), s.locator(".noUi-target").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + fraction * track["width"], y, steps=12)
    page.mouse.up()
    page.wait_for_function("([el, old]) => el.textContent.trim() !== old", arg=[readout.element_handle(), before])
    return before, readout.inner_text().strip()


def choose_option(panel, label: str, option: str) -> tuple[str, str]:
    """Pick ``option`` in the ipywidgets Dropdown of ``panel`` described by ``label``; returns the choice
    before and after."""
    select = panel.locator(".widget-dropdown", has=panel.page.locator(".widget-label", has_text=label)).first \
        .locator("select")
    select.scroll_into_view_if_needed()
    before = select.input_value()                   # ipywidgets: value = the option's label (its text has &nbsp;)
    select.select_option(value=option)
    return before, select.input_value()


def wait_image_changed(page, image, before_png: bytes, timeout_s: float, min_pixels: int = 200) -> tuple[bytes, int]:
    """Wait until the ``<img>`` shows a picture that differs from ``before_png`` in at least ``min_pixels`` pixels.

    Waits for each new ``src`` (ipywidgets sets a new blob URL per redraw) rather than sleeping; returns the
    new screenshot and the number of changed pixels. Raises ``TimeoutError`` when it did not change in time.
    """
    deadline = time.monotonic() + timeout_s
    src = None
    while True:
        remaining_ms = (deadline - time.monotonic()) * 1000
        if remaining_ms <= 0:
            raise TimeoutError(f"the image did not change within {timeout_s:.0f} s")
        try:
            page.wait_for_function("([img, old]) => img.src !== old && img.complete && img.naturalWidth > 0",
                                   arg=[image.element_handle(), src], timeout=remaining_ms)
        except PlaywrightTimeout:
            raise TimeoutError(f"the image did not change within {timeout_s:.0f} s") from None
        src = image.get_attribute("src")
        png = image.screenshot(animations="disabled")
        changed = count_changed_pixels(before_png, png)
        if changed >= min_pixels:
            return png, changed
