"""An exact cache of the frozen teacher's outputs, one entry per (image, augmentation view).

**Why cache.** In a KD step on a CPU the teacher's forward pass is most of the work: the course's teacher
(1.15M parameters) costs 232 of the 276 MFLOP per image of a step that trains the 72k-parameter student.
The teacher never changes, so computing its output for the same input twice is wasted work.

**Why one output per image is WRONG.** The student never trains on the stored image itself: each epoch it
sees a new random *view* of it (a crop of the zero-padded image, flipped or not:
:func:`kd_lab.data.augment_batch`), and the teacher's output depends on the view — a shift by two pixels or
a flip moves its logits, sometimes its predicted class. A cache keyed by the image alone stores the output
for one view (say the un-augmented image) and hands it out for every other view: the student is taught to
answer, for view v, what the teacher said about another input. That is not Hinton et al.'s (2015) KD loss,
where teacher and student see the same input; Beyer et al. (2022, "Knowledge Distillation: A Good Teacher
Is Patient and Consistent") call a teacher that sees the student's exact view *consistent* and find that
fixed teacher targets under augmentation — what a per-image cache gives — distil worse.
:func:`naive_cache_error` measures how far such targets are from the true ones.

**Why (image, view) keys are exact.** The augmentation has finitely many outcomes: a crop offset (dy, dx)
in {0..2p}² and a flip bit, V = 2·(2p+1)² views (50 for Fashion-MNIST's padding p = 2;
:func:`kd_lab.data.num_views`). The teacher is frozen and in eval mode — its BatchNorm layers use their
running statistics, so an image's output does not depend on the rest of its batch — hence its output for
(image i, view v) is a pure function of (i, v): computed once on first use and read back later, it is the
number the teacher would compute again (bit for bit in our checks; at most the float rounding of another
batch size, about 1e-6 in fp32). The training loop is unchanged — the same random views in the same order,
the same losses; only the teacher's repeated work goes.

**What it costs.** A :class:`TeacherOutputs` table holds, for every image used, a row of V outputs of width
D and a mask of which are filled: V·D·b bytes per image (b = 4 in fp32, 2 under bf16 autocast). Logits
(D = 10) take 2 kB per image in fp32, 120 MB for all 60,000 Fashion-MNIST images; the pooled embedding RKD
reads (D = 256 for the ``teacher`` preset) 51 kB per image, 3 GB (1.5 GB in bf16) for all of them. So only
images that are trained on get a row (1,000 labeled images: 51 MB of embeddings). The table fills lazily:
a step runs the teacher only on its (image, view) pairs not yet in the table. A 60-epoch run on 1,000 images
looks up each of its 50,000 pairs 1.2 times on average, so a first run computes about 60 % of the online
teacher's work; later runs with the same teacher on the same images (KD, DKD and KD + RKD of one seed in a
comparison read one logits table) compute almost none.

**On disk.** Tables live in ``$KD_LAB_CACHE/teacher_outputs/`` (default ``~/.cache/kd_lab/``, next to the
zoo's teachers), one file per (data split, kind, precision, teacher weights), whose header holds the full
key: format version, the teacher's weights hash, a hash of the split's images, image count, views, width,
dtype; and a SHA-256 of the contents. A table reads its file at its first lookup and writes it when the run
ends (:meth:`TeacherOutputs.save`: a temporary file named after the process, then a rename, so readers see
the old file or the new one), merged with the rows another process saved meanwhile. A stale file (another
key or shape) or a corrupt one (unreadable, failed checksum) is reported in one line and rebuilt.

* :class:`TeacherOutputs` — one kind of output (``"logits"`` or ``"embedding"``) of one teacher on one split;
  :meth:`~TeacherOutputs.lookup` returns the rows of given (image, view) pairs, computing the missing ones.
* :class:`TeacherCache` — the tables one method reads (``Method.teacher_outputs``); :func:`kd_lab.train.fit`
  attaches it to the method and binds it to each batch, and ``Method.teacher_output(x)`` reads it.
* :func:`compute_outputs` — the teacher on given views; :func:`naive_cache_error` — the error of a per-image cache.
"""
from __future__ import annotations

import hashlib
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import losses
from .data import ImageData, identity_view, num_views, view_images

__all__ = ["KINDS", "FORMAT", "CachedOutputs", "TeacherOutputs", "TeacherCache", "compute_outputs", "cache_dir",
           "weights_hash", "images_hash", "naive_cache_error"]

KINDS = ("logits", "embedding")     # what a table can hold: Features.logits (B, K), Features.embedding (B, D)
FORMAT = 1                          # the file format; part of every key, so a new format rebuilds old files
_BATCH = 1024                       # images per teacher forward when filling a table


def cache_dir() -> Path:
    """``$KD_LAB_CACHE/teacher_outputs`` (default ``~/.cache/kd_lab/teacher_outputs``)."""
    return Path(os.environ.get("KD_LAB_CACHE", Path.home() / ".cache" / "kd_lab")) / "teacher_outputs"


def _tensor_bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def weights_hash(model: nn.Module) -> str:
    """SHA-256 of a model's state (every tensor's name, dtype, shape and bytes): equal for equal weights."""
    h = hashlib.sha256()
    for name, value in sorted(model.state_dict().items()):
        h.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        h.update(_tensor_bytes(value))
    return h.hexdigest()


def images_hash(data: ImageData) -> str:
    """SHA-256 of a split's identity: its name, images, normalisation and padding (what the teacher's input
    depends on)."""
    h = hashlib.sha256(f"{data.name}:{tuple(data.x.shape)}:{data.pad}:".encode())
    h.update(_tensor_bytes(data.x))
    h.update(_tensor_bytes(data.mean.float()) + _tensor_bytes(data.std.float()))
    return h.hexdigest()


def _reachable_views(data: ImageData) -> torch.Tensor:
    """The view ids the split's augmentation can draw: all of them, or the unflipped ones without flips."""
    return torch.arange(0, num_views(data.pad), 1 if data.flip else 2, device=data.device)


@dataclass
class CachedOutputs:
    """The teacher's outputs of one batch read from a cache: the kinds the method declared, None otherwise."""

    logits: torch.Tensor | None = None      # (B, K)
    embedding: torch.Tensor | None = None   # (B, D)


@torch.no_grad()
def compute_outputs(teacher: nn.Module, data: ImageData, images: torch.Tensor, views: torch.Tensor,
                    kinds=("logits",), *, bf16: bool = False, batch_size: int = _BATCH) -> dict[str, torch.Tensor]:
    """The teacher's outputs for the images ``images`` (M,) of ``data`` seen through ``views`` (M,):
    ``{kind: (M, D)}``. Eval mode, no gradient, bf16 autocast when ``bf16`` (as the run they serve), on the
    teacher's device, ``batch_size`` images per forward."""
    device = next(teacher.parameters()).device
    was_training = teacher.training
    teacher.eval()
    parts: dict[str, list[torch.Tensor]] = {kind: [] for kind in kinds}
    for start in range(0, len(images), batch_size):
        idx, v = images[start:start + batch_size], views[start:start + batch_size]
        x = data.normalize(view_images(data.x[idx], v, data.pad)).to(device)          # (b, C, H, W)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = teacher(x, features=True)                                           # logits, taps, embedding
        for kind in kinds:
            parts[kind].append(getattr(out, kind))
    teacher.train(was_training)
    return {kind: torch.cat(p) for kind, p in parts.items() if p}


# ------------------------------------------------------------------------------------------- one table
class TeacherOutputs:
    """One kind of the teacher's output for the (image, view) pairs of one whole split, filled on demand.

    ``data`` is the whole split (e.g. the training split; not a subset: image indices name its images);
    ``kind`` is ``"logits"`` or ``"embedding"``; ``bf16`` computes and stores as a run under bf16 autocast
    does. Storage: ``slot`` (N,) maps an image to its row (−1: none yet), ``rows`` (M, V, D) and ``filled``
    (M, V) hold the M images used so far (the module docstring gives the memory).
    """

    def __init__(self, teacher: nn.Module, data: ImageData, kind: str = "logits", *, bf16: bool = False,
                 folder: Path | str | None = None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        if data.source_index is not None:
            raise ValueError(f"a teacher-output table is built on a whole split, not on a subset of "
                             f"{len(data)} images of {data.name!r}: pass the split the subset was cut from")
        self.teacher, self.data, self.kind, self.bf16 = teacher, data, kind, bool(bf16)
        self.dtype = torch.bfloat16 if bf16 else torch.float32
        self.views = num_views(data.pad)
        probe = torch.zeros(1, dtype=torch.long, device=data.device)
        self.dim = compute_outputs(teacher, data, probe, probe + identity_view(data.pad), (kind,))[kind].shape[1]
        self.key = {"format": FORMAT, "teacher": weights_hash(teacher), "data": images_hash(data),
                    "dataset": data.name, "images": len(data), "kind": kind, "dim": self.dim, "pad": data.pad,
                    "views": self.views, "dtype": str(self.dtype).removeprefix("torch.")}
        name = f"{data.name}-{kind}-{self.key['dtype']}-{self.key['teacher'][:12]}-{self.key['data'][:8]}.pt"
        self.path = Path(folder or cache_dir()) / name
        dev = data.device
        self.slot = torch.full((len(data),), -1, dtype=torch.long, device=dev)      # (N,) row of each image
        self.image = torch.empty(0, dtype=torch.long, device=dev)                   # (M,) image of each row
        self.rows = torch.empty(0, self.views, self.dim, dtype=self.dtype, device=dev)   # (M, V, D)
        self.filled = torch.empty(0, self.views, dtype=torch.bool, device=dev)     # (M, V)
        self.used = 0                                   # rows in use (the tensors grow by doubling)
        self.loaded = self.dirty = False                # file read yet; rows the file lacks
        self.computed = self.served = 0                 # pairs computed by the teacher / looked up

    def __repr__(self) -> str:
        filled = int(self.filled[:self.used].sum()) if self.loaded else "?"
        return (f"TeacherOutputs({self.kind!r} of {self.data.name!r}, {self.used} images x {self.views} views, "
                f"{filled} filled, {self.key['dtype']}, file {self.path.name})")

    # --------------------------------------------------------------------------------- lookups
    def lookup(self, images: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The outputs (B, D) for images ``images`` (B,) (indices into the split) seen through ``views`` (B,);
        pairs not in the table yet are computed by the teacher (in one batch) and stored."""
        miss = self.missing(images, views)
        if bool(miss.any()):
            out = compute_outputs(self.teacher, self.data, images[miss], views[miss], (self.kind,), bf16=self.bf16)
            self.fill(images[miss], views[miss], out[self.kind])
            self.computed += int(miss.sum())
        self.served += len(images)
        return self.read(images, views)

    def missing(self, images: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """(B,) True where the pair (images[b], views[b]) has no output in the table yet."""
        self._load()
        if self.used == 0:
            return torch.ones_like(images, dtype=torch.bool)
        slot = self.slot[images]                                        # (B,), −1: image not seen yet
        return (slot < 0) | ~self.filled[slot.clamp(min=0), views]

    def read(self, images: torch.Tensor, views: torch.Tensor) -> torch.Tensor:
        """The stored outputs (B, D) of pairs that are all in the table."""
        return self.rows[self.slot[images], views]

    def fill(self, images: torch.Tensor, views: torch.Tensor, values: torch.Tensor) -> None:
        """Store ``values`` (B, D), the outputs of the pairs (images[b], views[b])."""
        slot = self._rows_for(images)
        self.rows[slot, views] = values.to(self.rows.device, self.dtype)
        self.filled[slot, views] = True
        self.dirty = True

    def _rows_for(self, images: torch.Tensor) -> torch.Tensor:
        """The row of each image (B,), given a new row where it has none."""
        new = images[self.slot[images] < 0].unique()
        if len(new):
            self._grow(self.used + len(new))
            rows = torch.arange(self.used, self.used + len(new), device=self.slot.device)
            self.slot[new], self.image[rows] = rows, new
            self.used += len(new)
        return self.slot[images]

    def _grow(self, needed: int) -> None:
        """Room for ``needed`` rows: capacity doubles (at most one row per image of the split)."""
        capacity = len(self.image)
        if needed <= capacity:
            return
        capacity = min(len(self.data), max(needed, 2 * capacity, 64))
        self.image = torch.cat([self.image, self.image.new_full((capacity - len(self.image),), -1)])
        self.rows = torch.cat([self.rows, self.rows.new_zeros(capacity - len(self.rows), self.views, self.dim)])
        self.filled = torch.cat([self.filled, self.filled.new_zeros(capacity - len(self.filled), self.views)])

    # ------------------------------------------------------------------------------------ disk
    def _load(self) -> None:
        """Read the file once, at the first lookup."""
        if not self.loaded:
            self.loaded = True
            payload = self._read(report=True)
            if payload is not None:
                self._absorb(payload)

    def _absorb(self, payload: dict) -> None:
        """Take the file's filled pairs that the table lacks."""
        dev = self.slot.device
        images, rows, filled = (payload[k].to(dev) for k in ("images", "rows", "filled"))
        if not len(images):
            return
        slot = self._rows_for(images)                                           # (M,)
        new = filled & ~self.filled[slot]                                       # (M, V)
        self.rows[slot] = torch.where(new[..., None], rows, self.rows[slot])
        self.filled[slot] |= filled

    def _read(self, report: bool) -> dict | None:
        """The file's contents when it is a valid file of this key; None when it is missing, or (reported
        when ``report``) stale or corrupt: then it is rewritten at the next save."""
        if not self.path.is_file():
            return None
        try:
            payload = torch.load(self.path, map_location="cpu", weights_only=True)
            problem = self._problem(payload)
        except Exception as err:  # noqa: BLE001 - truncated, garbage, another format: all mean "rebuild"
            problem = f"cannot be read ({type(err).__name__})"
        if problem is None:
            return payload
        if report:
            warnings.warn(f"teacher-output cache {self.path} {problem}; rebuilding it", stacklevel=4)
        self.dirty = True
        return None

    def _problem(self, payload) -> str | None:
        """What is wrong with a file's contents (None: nothing)."""
        if not isinstance(payload, dict) or not isinstance(payload.get("key"), dict):
            return f"is not a kd_lab teacher-output file of format {FORMAT}"
        if payload["key"] != self.key:
            diff = {k: payload["key"].get(k) for k in self.key if payload["key"].get(k) != self.key[k]}
            return f"is stale: it holds {diff}, wanted {({k: self.key[k] for k in diff})}"
        images, rows, filled = (payload.get(k) for k in ("images", "rows", "filled"))
        if not all(isinstance(t, torch.Tensor) for t in (images, rows, filled)):
            return "lacks its tensors"
        m = len(images)
        shapes_ok = (images.dtype == torch.long and rows.dtype == self.dtype and filled.dtype == torch.bool
                     and rows.shape == (m, self.views, self.dim) and filled.shape == (m, self.views))
        if not shapes_ok or (m and not (0 <= int(images.min()) and int(images.max()) < len(self.data)
                                        and len(images.unique()) == m)):
            return "has rows of the wrong shape, type or images"
        if _checksum(images, rows, filled) != payload.get("sha256"):
            return "fails its checksum"
        return None

    def save(self) -> Path | None:
        """Write the table to its file atomically when it holds pairs the file lacks, after taking the pairs
        another process saved meanwhile; returns the path, or None when nothing was written. A folder that
        cannot be written is reported and the run goes on without the file."""
        if not self.dirty:
            return None
        on_disk = self._read(report=False)
        if on_disk is not None:
            self._absorb(on_disk)
        m = self.used
        images, rows, filled = (t[:m].cpu() for t in (self.image, self.rows, self.filled))
        payload = {"key": self.key, "images": images, "rows": rows, "filled": filled,
                   "sha256": _checksum(images, rows, filled)}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(payload, tmp)
            os.replace(tmp, self.path)              # atomic: readers see the old file or the new one
        except OSError as err:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"teacher-output cache {self.path} could not be written ({err}); not saved", stacklevel=2)
            return None
        self.dirty = False
        return self.path


def _checksum(images: torch.Tensor, rows: torch.Tensor, filled: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in (images, filled, rows):
        h.update(_tensor_bytes(t))
    return h.hexdigest()


# ----------------------------------------------------------------------------------- one method's cache
class TeacherCache:
    """The teacher outputs one method reads (its ``teacher_outputs``: ``"logits"``, ``"embedding"``), for the
    images of the whole split ``data`` that its training set was cut from.

    :func:`kd_lab.train.fit` calls :meth:`attach` (checks that the training set is part of ``data``, opens a
    :class:`TeacherOutputs` per kind), :meth:`bind` before each batch (its images as indices into ``data``,
    through ``train.source_index``, and their views), and :meth:`detach` at the end (saves the tables).
    ``Method.teacher_output(x)`` then reads the bound batch's rows. ``folder``: where the files go (default
    :func:`cache_dir`).
    """

    def __init__(self, data: ImageData, *, folder: Path | str | None = None):
        if data.source_index is not None:
            raise ValueError(f"a TeacherCache is built on a whole split, not on a subset of {len(data)} images of "
                             f"{data.name!r}: pass the split the training set was cut from")
        self.data, self.folder = data, folder
        self.tables: dict[str, TeacherOutputs] = {}
        self.teacher, self.bf16, self.source = None, False, None
        self._batch: list | None = None                  # [x, images, views, outputs or None]
        self.computed = self.served = 0

    def attach(self, method, train: ImageData, bf16: bool = False) -> TeacherCache:
        """Serve ``method`` (a :class:`kd_lab.methods.Method` with a teacher and ``teacher_outputs``) while it
        trains on ``train``, a subset of this cache's split (or the split itself), under bf16 autocast when
        ``bf16``; sets ``method.output_cache``."""
        kinds = tuple(getattr(method, "teacher_outputs", ()))
        unknown = [k for k in kinds if k not in KINDS]
        if not kinds or unknown or getattr(method, "teacher", None) is None:
            raise ValueError(f"a teacher-output cache serves a method with a teacher that declares teacher_outputs "
                             f"among {KINDS}; {getattr(method, 'name', method)!r} declares {kinds}")
        self.data = self.data.to(train.device)
        source = train.source_indices()                                     # (n,) indices into data
        inside = len(source) == 0 or (int(source.min()) >= 0 and int(source.max()) < len(self.data))
        if train.name != self.data.name or not inside or not torch.equal(self.data.x[source], train.x):
            raise ValueError(f"the training set ({len(train)} images of {train.name!r}) is not part of the cache's "
                             f"split ({len(self.data)} images of {self.data.name!r}): build the TeacherCache of the "
                             f"split the training set was cut from")
        self.teacher, self.bf16, self.source = method.teacher, bool(bf16), source
        self.tables = {k: TeacherOutputs(method.teacher, self.data, k, bf16=bf16, folder=self.folder) for k in kinds}
        method.output_cache = self
        return self

    def bind(self, x: torch.Tensor, index: torch.Tensor, views: torch.Tensor) -> None:
        """The batch about to be trained on: images ``x`` (B, C, H, W), ``index`` (B,) their positions in the
        training set, ``views`` (B,) their views. Its outputs are looked up at the first :meth:`outputs_for`."""
        self._batch = [x, self.source[index], views, None]

    def outputs_for(self, x: torch.Tensor) -> CachedOutputs | None:
        """The teacher's outputs of the bound batch when ``x`` is that batch (the same tensor), else None."""
        if self._batch is None or self._batch[0] is not x:
            return None
        if self._batch[3] is None:                       # once per batch, whatever the number of phases
            self._batch[3] = self.lookup(self._batch[1], self._batch[2])
        return self._batch[3]

    def lookup(self, images: torch.Tensor, views: torch.Tensor) -> CachedOutputs:
        """Every declared kind for images ``images`` (B,) (indices into the split) seen through ``views`` (B,);
        one teacher forward computes the pairs any table lacks, for all of them."""
        miss = torch.zeros_like(images, dtype=torch.bool)
        for table in self.tables.values():
            miss |= table.missing(images, views)
        if bool(miss.any()):
            out = compute_outputs(self.teacher, self.data, images[miss], views[miss], tuple(self.tables),
                                  bf16=self.bf16)
            for kind, table in self.tables.items():
                table.fill(images[miss], views[miss], out[kind])
            self.computed += int(miss.sum())
        self.served += len(images)
        return CachedOutputs(**{kind: table.read(images, views) for kind, table in self.tables.items()})

    @property
    def hit_rate(self) -> float | None:
        """The fraction of looked-up pairs that were already cached (None before any lookup)."""
        return 1 - self.computed / self.served if self.served else None

    def detach(self, method) -> None:
        """The run is over: unbind, stop serving ``method``, save every table that holds new pairs."""
        if getattr(method, "output_cache", None) is self:
            method.output_cache = None
        self._batch = None
        for table in self.tables.values():
            table.save()


# ---------------------------------------------------------------------------- the naive cache's error
@torch.no_grad()
def naive_cache_error(teacher: nn.Module, data: ImageData, n_images: int = 128, *, temperature: float = 4.0,
                      bf16: bool = False) -> dict[str, float]:
    """How far a cache keyed by the image alone is from the truth under augmentation.

    For each of the first ``n_images`` images of ``data`` and each view v its augmentation can draw, compare
    the teacher's logits on view v, z_v (what KD needs), with its logits on the un-augmented image, z_0 (what
    a per-image cache hands out for every view):

    * ``logit_mae`` — mean |z_v − z_0| over pairs and classes;
    * ``kd_loss`` — mean T²·KL(softmax(z_v/T) ‖ softmax(z_0/T)) (:func:`kd_lab.losses.kd_loss`): the KD loss a
      student that copied the per-image targets perfectly would still pay against the true ones;
    * ``top1_changed`` — the fraction of pairs where argmax z_v ≠ argmax z_0.

    An (image, view) cache has all three 0: it stores z_v itself.
    """
    if isinstance(n_images, bool) or not isinstance(n_images, int) or not 0 < n_images <= len(data):
        raise ValueError(f"n_images must be an integer in 1..{len(data)}, got {n_images!r}")
    images = torch.arange(n_images, device=data.device)
    views = _reachable_views(data)
    pairs_img, pairs_view = images.repeat_interleave(len(views)), views.repeat(n_images)      # (n·V,)
    true = compute_outputs(teacher, data, pairs_img, pairs_view, bf16=bf16)["logits"].float()   # (n·V, K)
    plain = torch.full_like(images, identity_view(data.pad))
    naive = compute_outputs(teacher, data, images, plain, bf16=bf16)["logits"].float()         # (n, K)
    naive = naive.repeat_interleave(len(views), dim=0)                                         # (n·V, K)
    return {"logit_mae": float((true - naive).abs().mean()),
            "kd_loss": float(losses.kd_loss(naive, true, temperature)),
            "top1_changed": float((true.argmax(1) != naive.argmax(1)).float().mean()),
            "pairs": len(true)}
