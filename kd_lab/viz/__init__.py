"""Plots of the course, one module per family of methods, the lesson's order:

- :mod:`._common` — what every lesson draws: loss and accuracy curves of a run, epoch metrics, mean ± std over
  seeds, PNG rendering for the widgets, a training panel's live view (each family registers its kinds);
  and the helpers the families share;
- :mod:`.response` — lesson 01 (KD, DKD): soft targets, temperatures, dark knowledge, sweeps, per-class accuracy;
- :mod:`.label_free` — lesson 02 (SSLD): the mined unlabeled pool, image grids, accuracy against unlabeled data;
- :mod:`.mutual` — lesson 03 (DML): the peers' accuracy and agreement;
- :mod:`.feature` — lesson 04 (OFD, FitNet, U-DML): margins, partial L2, feature maps, per-stage distances;
- :mod:`.relation` — lesson 05 (RKD): distance and angle matrices, embeddings, relation agreement;
- :mod:`.comparison` — lesson 06: every method's accuracy against its cost.

Every name is re-exported here: ``from kd_lab import viz; viz.plot_soft_targets(...)``.

Every function takes data (torch tensors, numpy arrays or plain lists/dicts), optionally an ``ax`` (or
``axes``) to draw on, and returns the matplotlib ``Figure``. Figures are built with
``matplotlib.figure.Figure`` only, never ``pyplot``: no global state, safe from background threads, and
nothing is shown until the caller displays the figure (or renders it with :func:`figure_to_png`).
Importing this package changes no global state (no rcParams, style or backend).
"""
from ._common import figure_to_png, plot_epoch_metrics, plot_history, plot_live_view, plot_runs_bar
from .comparison import plot_comparison
from .effects import plot_paired_effects
from .feature import (
                      plot_feature_maps,
                      plot_feature_view,
                      plot_margin_agreement,
                      plot_margin_histograms,
                      plot_partial_l2,
                      plot_stage_distances,
)
from .label_free import (
                      plot_class_balance,
                      plot_confidence_histogram,
                      plot_images,
                      plot_mining_grid,
                      plot_pseudo_label_view,
                      plot_unlabeled_curve,
)
from .mutual import plot_paired_seeds, plot_peer_view, plot_peers
from .relation import (
                      plot_angle_matrix,
                      plot_embedding_2d,
                      plot_relation_agreement,
                      plot_relation_matrices,
                      plot_relation_view,
)
from .response import (
                      most_similar_pairs,
                      plot_dark_knowledge,
                      plot_dark_knowledge_row,
                      plot_gradient_norms,
                      plot_logit_view,
                      plot_per_class,
                      plot_soft_targets,
                      plot_sweep,
                      plot_temperatures,
)

__all__ = [
    # every lesson (_common)
    "plot_history", "plot_epoch_metrics", "plot_runs_bar", "figure_to_png", "plot_live_view",
    # lesson 01 (response)
    "plot_soft_targets", "plot_temperatures", "plot_dark_knowledge", "plot_dark_knowledge_row", "most_similar_pairs",
    "plot_gradient_norms", "plot_sweep", "plot_per_class", "plot_logit_view",
    # lesson 01 (effects)
    "plot_paired_effects",
    # lesson 02 (label_free)
    "plot_images", "plot_confidence_histogram", "plot_class_balance", "plot_mining_grid", "plot_unlabeled_curve",
    "plot_pseudo_label_view",
    # lesson 03 (mutual)
    "plot_peers", "plot_peer_view", "plot_paired_seeds",
    # lesson 04 (feature)
    "plot_margin_histograms", "plot_margin_agreement", "plot_partial_l2", "plot_feature_maps",
    "plot_stage_distances", "plot_feature_view",
    # lesson 05 (relation)
    "plot_relation_matrices", "plot_angle_matrix", "plot_embedding_2d", "plot_relation_agreement",
    "plot_relation_view",
    # lesson 06 (comparison)
    "plot_comparison",
]

