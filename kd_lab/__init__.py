"""kd_lab: the package behind an interactive course on knowledge distillation.

Modules, one job each: ``data`` (data sets on the device), ``models`` (ConvNet family, presets,
connector), ``losses`` (every distillation loss of the course: the answer key), ``methods`` (one module per
family; how a step turns a batch into loss terms; the registry), ``recipes`` (teacher recipes), ``train``
(``fit``, ``evaluate``, ``History``), ``zoo`` (cached teachers), ``compare`` (running a comparison),
``results`` and ``stats`` (reading results: mean ± std, effects paired by seed), ``viz`` (plots per family),
``widgets`` (notebook panels), ``exercises`` (self-checks per family). Importing it changes no global state.
"""
__version__ = "0.1.0"
