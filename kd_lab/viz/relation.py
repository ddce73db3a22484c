"""Plots of lesson 05, relation-based distillation (``notebooks/05_rkd.ipynb``: RKD, Park et al. 2019): the
normalised distance matrices of the teacher's and the student's embeddings of one batch, the angle matrix at
one anchor, embeddings in two dimensions, the relation agreement with the teacher over epochs, and the training
panel's live view of both relations.
"""
from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._common import _fig_ax, _heatmap, _np, live_view, plot_epoch_metrics

__all__ = ["plot_relation_matrices", "plot_angle_matrix", "plot_embedding_2d", "plot_relation_agreement",
           "plot_relation_view"]


def _relation(kind: str, emb):
    """RKD's relations as numpy arrays (torch is imported here): ``"distance"`` (B, B) normalised
    distances, ``"angle"`` (B, B, B) triplet cosines (Park et al. 2019; :mod:`kd_lab.losses`)."""
    import torch

    from ..losses import rkd_angle_tensor, rkd_distance_matrix

    e = torch.as_tensor(_np(emb), dtype=torch.float32)
    return (rkd_distance_matrix(e) if kind == "distance" else rkd_angle_tensor(e)).numpy()


def _class_blocks(ax, labels, classes) -> None:
    """White lines between the class blocks of a class-sorted batch; class names at the blocks' centres."""
    starts = np.concatenate([[0], np.flatnonzero(np.diff(labels)) + 1])
    ends = np.concatenate([starts[1:], [labels.size]])
    for edge in starts[1:] - 0.5:
        ax.axhline(edge, color="white", lw=1)
        ax.axvline(edge, color="white", lw=1)
    centres, names = (starts + ends - 1) / 2, [classes[labels[s]] for s in starts]
    ax.set_xticks(centres)
    ax.set_xticklabels(names, rotation=45, ha="right", rotation_mode="anchor", fontsize=7)
    ax.set_yticks(centres)
    ax.set_yticklabels(names, fontsize=7)


def _relation_heatmap(ax, m, title, cmap, vmin, vmax, labels=None, classes=None):
    """A relation matrix as a heatmap; with ``labels`` and ``classes``, its class blocks marked."""
    im = _heatmap(ax, m, title, cmap, vmin, vmax)
    if labels is not None and classes is not None:
        _class_blocks(ax, labels, classes)
    return im


# ------------------------------------------------------------------------------ relation matrices
def plot_relation_matrices(student_emb, teacher_emb, labels, classes, axes=None, student_name="student"):
    """RKD-D's relation side by side: the normalised distance matrices ||x_i − x_j|| / μ (Park et al.
    2019) of the teacher's and the student's embeddings (B, D_t) and (B, D_s) of one batch, and their
    difference student − teacher. The batch is sorted by class (stable), so classes form blocks."""
    lab = _np(labels, int).ravel()
    if lab.size != len(_np(student_emb)) or lab.size != len(_np(teacher_emb)):
        raise ValueError(f"{lab.size} labels for {len(_np(student_emb))} student and "
                         f"{len(_np(teacher_emb))} teacher embeddings")
    order = np.argsort(lab, kind="stable")
    d_t = _relation("distance", _np(teacher_emb)[order])               # (B, B)
    d_s = _relation("distance", _np(student_emb)[order])               # (B, B)
    if axes is None:
        fig = Figure(figsize=(15, 4.6), layout="constrained")
        axes = fig.subplots(1, 3)
    if len(axes) != 3:
        raise ValueError(f"plot_relation_matrices needs 3 axes, got {len(axes)}")
    top, diff = max(d_t.max(), d_s.max()), d_s - d_t
    span = max(np.abs(diff).max(), 1e-6)
    _relation_heatmap(axes[0], d_t, "teacher: distance / mean distance", "viridis", 0, top, lab[order], classes)
    _relation_heatmap(axes[1], d_s, f"{student_name}: distance / mean distance", "viridis", 0, top, lab[order],
                      classes)
    _relation_heatmap(axes[2], diff, f"{student_name} − teacher (mean |Δ| = {np.abs(diff).mean():.3f})", "RdBu_r",
                      -span, span, lab[order], classes)
    return axes[0].figure


def plot_angle_matrix(emb, anchor, ax=None, labels=None, classes=None, title=None):
    """RKD-A's relation for one anchor j: the (B, B) matrix cos∠(x_i, x_j, x_k) = <e_ij, e_kj>, the slice
    ``rkd_angle_tensor(emb)[:, anchor, :]`` (Park et al. 2019). Row and column j are 0 (no direction
    from x_j to itself). ``labels``/``classes`` (in the order of ``emb``) mark the class blocks."""
    b = len(_np(emb))
    if not 0 <= anchor < b:
        raise ValueError(f"anchor must be in [0, {b - 1}] for a batch of {b}, got {anchor}")
    a = _relation("angle", emb)[:, anchor, :]                          # (B, B)
    fig, ax = _fig_ax(ax, (5.2, 4.6))
    lab = _np(labels, int).ravel() if labels is not None else None
    _relation_heatmap(ax, a, title or f"angles at anchor j = {anchor}: cos∠(x_i, x_j, x_k)", "coolwarm", -1, 1,
                      lab, classes)
    if lab is None:
        ax.set(xlabel="k", ylabel="i")
    return fig


# ------------------------------------------------------------------------------------ embeddings
def plot_embedding_2d(points_2d, labels, classes, ax=None, title="embeddings, first two principal components"):
    """Scatter of 2-D points (N, 2), e.g. :func:`kd_lab.analysis.pca_2d` of embeddings, one colour per
    class (C0, C1, … by class index) with a legend of the classes present."""
    p, lab = _np(points_2d), _np(labels, int).ravel()
    if p.ndim != 2 or p.shape[1] != 2 or len(p) != lab.size:
        raise ValueError(f"points_2d must be (N, 2) with N = {lab.size} labels, got {p.shape}")
    fig, ax = _fig_ax(ax, (5.5, 4.6))
    for c in np.unique(lab):
        ax.scatter(p[lab == c, 0], p[lab == c, 1], s=8, color=f"C{c}", label=classes[c], alpha=0.8)
    ax.set(xlabel="PC 1", ylabel="PC 2", title=title)
    if lab.size:
        ax.legend(fontsize=7, markerscale=2, loc="best")
    return fig


def plot_relation_agreement(history, ax=None):
    """The ``relation_agreement`` that :class:`kd_lab.methods.RKD` measures each epoch: the correlation of the
    student's and the teacher's distance matrices on 256 fixed test images (1 = the same structure)."""
    return plot_epoch_metrics(history, ["relation_agreement"], ax=ax, ylabel="correlation of distance matrices",
                              title="Relation agreement with the teacher")


# ------------------------------------------------------------------------------------ live view
@live_view("relations")
def plot_relation_view(view):
    """Lesson 05's live view (:meth:`kd_lab.methods.RKD.live_view`): the teacher's and the student's distance
    matrices and their difference (top, :func:`plot_relation_matrices`), and their angle matrices at the anchor
    with their difference (bottom). ``view`` holds ``student`` (B, D_s), ``teacher`` (B, D_t) and ``labels`` (B,)
    sorted by class, ``classes`` and ``anchor``."""
    lab, j, classes = _np(view["labels"], int).ravel(), int(view["anchor"]), list(view["classes"])
    fig = Figure(figsize=(15, 9), layout="constrained")
    axes = fig.subplots(2, 3)
    plot_relation_matrices(view["student"], view["teacher"], lab, classes, axes=axes[0])
    plot_angle_matrix(view["teacher"], j, ax=axes[1, 0], labels=lab, classes=classes,
                      title=f"teacher: angles at anchor j = {j} ({classes[lab[j]]})")
    plot_angle_matrix(view["student"], j, ax=axes[1, 1], labels=lab, classes=classes,
                      title=f"student: angles at anchor j = {j}")
    diff = _relation("angle", view["student"])[:, j, :] - _relation("angle", view["teacher"])[:, j, :]
    span = max(np.abs(diff).max(), 1e-6)                              # its own symmetric scale
    _relation_heatmap(axes[1, 2], diff, f"student − teacher (mean |Δ| = {np.abs(diff).mean():.3f})", "RdBu_r",
                      -span, span, lab, classes)
    fig.suptitle("Live view: the relations RKD compares, on fixed test images", fontsize=10)
    return fig
