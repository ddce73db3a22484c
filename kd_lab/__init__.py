"""kd_lab: the package behind an interactive course on knowledge distillation.

Modules, one job each: ``data`` (data sets on the device), ``models`` (ConvNet family, presets,
connector), ``losses`` (every distillation loss of the course), ``methods`` (how a step turns a batch
into loss terms), ``train`` (``fit``, ``evaluate``, ``History``), ``zoo`` (cached teachers), ``viz``
(plots), ``widgets`` (notebook panels), ``exercises`` (self-checks). Importing it changes no global
state.
"""
__version__ = "0.1.0"
