"""Self-checks for the lessons' exercises, one module per family of methods, the lessons' order:
:mod:`.response` (lesson 01), :mod:`.label_free` (02), :mod:`.mutual` (03), :mod:`.feature` (04),
:mod:`.relation` (05), :mod:`.comparison` (06); :mod:`._common` holds the checking machinery they share.

Each ``check_…`` prints what is right or what is wrong (and a hint), and returns True or False; it never
raises on a wrong answer, so a notebook keeps running. Every name is re-exported here:
``from kd_lab import exercises; exercises.check_tckd(my_tckd)``.
"""
from .comparison import check_pareto_front, check_seed_summary
from .feature import (
    MASK_QUESTIONS,
    check_margin_value,
    check_mask_by_hand,
    check_ofd_margin,
    check_partial_l2_mask,
    check_worst_change,
)
from .label_free import GT_TERM_CHOICES, check_gt_term, check_mining
from .mutual import DETACH_CHOICES, check_calibration_error, check_detach, check_dml_loss
from .relation import _TRIANGLE as _TRIANGLE  # the hand-made triangle of check_angle_tensor, for the tests
from .relation import check_angle_tensor, check_distance_matrix
from .response import (
    check_entropy_temperature,
    check_prediction,
    check_tckd,
    check_temperature_limits,
)

__all__ = [
    "check_tckd", "check_entropy_temperature", "check_temperature_limits", "check_prediction",   # lesson 01
    "check_mining", "check_gt_term", "GT_TERM_CHOICES",                    # lesson 02 (label_free)
    "check_dml_loss", "check_detach", "DETACH_CHOICES", "check_calibration_error",  # lesson 03 (mutual)
    "check_margin_value", "MASK_QUESTIONS", "check_mask_by_hand", "check_worst_change",   # lesson 04
    "check_ofd_margin", "check_partial_l2_mask",
    "check_distance_matrix", "check_angle_tensor",                         # lesson 05 (relation)
    "check_seed_summary", "check_pareto_front",                            # lesson 06 (comparison)
]
