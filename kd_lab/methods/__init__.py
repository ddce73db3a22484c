"""Methods: how one training step turns a batch into named loss terms, one module per family.

* :mod:`~kd_lab.methods.response` (lesson 01): ``scratch``, ``kd``, ``dkd``
* :mod:`~kd_lab.methods.label_free` (lesson 02): ``ssld``
* :mod:`~kd_lab.methods.mutual` (lesson 03): ``dml``
* :mod:`~kd_lab.methods.feature` (lesson 04): ``fitnet``, ``ofd``, ``ofd+kd``, ``udml``
* :mod:`~kd_lab.methods.relation` (lesson 05): ``rkd-d``, ``rkd-a``, ``rkd``, ``kd+rkd``

A :class:`Method` returns a dict of weighted loss terms from ``loss_terms(x, y)``; the trainer sums them,
logs each one, and calls the hooks declared on :class:`Method` (``phases``, ``epoch_metrics``,
``training_set``, ...). A method declares itself with ``@register(name, lesson=..., knobs={...})`` at its
class, so the command line, the comparison, the benchmark and the notebook panels find it with no other
change; :func:`register_preset` names a registered class with other defaults. Read the registry with
:data:`METHODS` (name -> class), :func:`method_names` (course order), :func:`method_info`,
:func:`method_options` and :func:`make_method`.
"""
from ._base import (
                    KNOB_SCALES,
                    METHODS,
                    Knob,
                    Method,
                    MethodInfo,
                    check_options,
                    make_method,
                    method_info,
                    method_names,
                    method_options,
                    preset,
                    register,
                    register_preset,
                    unregister,
)
from .feature import OFD, OFDKD, UDML, FeatureKD, FitNet, parse_stages  # lesson 04
from .label_free import SSLD, SSLD_FINETUNES, SSLD_OBJECTIVES, SSLD_UNLABELED  # lesson 02
from .mutual import DML, DML_MODES  # lesson 03
from .relation import KDRKD, RKD, RKDAngle, RKDDistance  # lesson 05
from .response import DKD, KD, Scratch  # lesson 01 (importing a family registers its methods)

__all__ = ["Method", "Knob", "KNOB_SCALES", "MethodInfo", "METHODS", "register", "register_preset", "unregister",
           "preset", "method_names", "method_info", "method_options", "check_options", "make_method",
           "Scratch", "KD", "DKD", "SSLD", "DML", "FeatureKD", "FitNet", "OFD", "OFDKD", "UDML", "RKD",
           "RKDDistance", "RKDAngle", "KDRKD", "parse_stages", "DML_MODES", "SSLD_UNLABELED", "SSLD_OBJECTIVES",
           "SSLD_FINETUNES"]
