"""Label-free distillation (lesson 02): the student learns from the teacher's outputs only.

* :class:`SSLD` — Simple Semi-supervised Label Distillation: a symmetric KL to the teacher on the labeled
  images plus unlabeled images the teacher has never seen, mined by the teacher's confidence, and a fine-tune on
  the labeled images at the end.
"""
from __future__ import annotations

import torch

from .. import losses, recipes
from ..checks import check_number
from ._base import Knob, Method, _check_temperature, register
from .response import TEMPERATURE_KNOB

__all__ = ["SSLD", "SSLD_UNLABELED", "SSLD_OBJECTIVES", "SSLD_FINETUNES"]

SSLD_UNLABELED = ("mined", "global", "random", "all", "none")
SSLD_OBJECTIVES = ("ssld", "kd")
SSLD_FINETUNES = ("none", "distill", "ce")
_RULES = {"mined": "per_class", "global": "global", "random": "random"}     # unlabeled -> kd_lab.mining rule
LIVE_POOL = 500                         # unlabeled images the live view shows


@register("ssld", lesson="02_ssld", knobs={
    "temperature": TEMPERATURE_KNOB,
    "top_k": Knob(100, 4000, 100, "top-k unlabeled images per class", scale="int"),
    "pool_size": Knob(1000, 40000, 1000, "unlabeled pool (first N images)", scale="int")})
class SSLD(Method):
    """SSLD, Cui, Guo, Du et al. 2021, "Beyond Self-Supervision: A Simple Yet Effective Network Distillation
    Alternative to Improve Backbones" (PaddleClas): the student learns only from the teacher's outputs,
    L = T²·½[KL(p_t ‖ p_s) + KL(p_s ‖ p_t)] (:func:`kd_lab.losses.ssld_loss`), with no ground-truth term, on the
    labeled images L plus unlabeled images U. Term ``ssld`` (``kd`` with ``objective="kd"``: T²·KL(p_t ‖ p_s)).

    U is every training image the teacher was not trained on and that is not in L nor in the validation split
    (``held_out``), less exact duplicates of a test image (and repeats within U). ``unlabeled``: ``"mined"``
    keeps the ``top_k`` images per class the teacher is most confident about (:func:`kd_lab.mining.mine`), the
    controls at the same size ``"global"`` the ``top_k × classes`` most confident whatever their class and
    ``"random"`` as many at random; ``"all"`` keeps U, ``"none"`` trains on L only. ``pool_size`` uses only the
    first N images of U. The labels of U are never used to train: its images carry the teacher's labels (for the
    trainer's train-accuracy probe only; the loss reads no label); their hidden labels only measure the chosen
    images (``pool_precision``, how often the teacher's label is right; ``pool_balance``, the rarest teacher
    label's count over the mean, :func:`kd_lab.mining.class_balance`), reported by :meth:`epoch_metrics`.

    ``finetune``: the last step of PaddleClas's SSLD, a second stage on L alone after the main one
    (:meth:`finetune_stage`): ``"distill"`` with the same label-free loss (PaddleClas's way, at about a hundredth
    of the learning rate), ``"ce"`` with cross-entropy on the labels, for ``finetune_steps`` optimizer steps at
    ``finetune_lr`` times the main run's learning rate; ``"none"``: no second stage.
    The teacher must not have seen U: by default it is the zoo's ``first20k`` teacher (training images
    0..19,999). U is derived from the recipe of the teacher passed in (``teacher.zoo_info["recipe"]``, set by
    :func:`kd_lab.zoo.get_teacher`; the default recipe's split otherwise), so it never holds an image the teacher
    saw; a teacher trained on every image is refused.
    """

    needs_teacher = True
    teacher_recipe = "first20k"             # a teacher of images 0..19,999: the rest can be unlabeled to it
    teacher_outputs = ("logits",)
    held_out = None                         # indices of the validation split (set by kd_lab.experiments): not in U

    def __init__(self, student, teacher=None, temperature: float = 1.0, unlabeled: str = "mined",
                 top_k: int = 1000, pool_size: int | None = None, objective: str = "ssld", finetune: str = "none",
                 finetune_steps: int = 100, finetune_lr: float = 0.01):
        super().__init__(student, teacher)
        for name, value, allowed in (("unlabeled", unlabeled, SSLD_UNLABELED), ("finetune", finetune, SSLD_FINETUNES),
                                     ("objective", objective, SSLD_OBJECTIVES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        for name, value, none_ok in (("top_k", top_k, False), ("pool_size", pool_size, True),
                                     ("finetune_steps", finetune_steps, False)):
            positive = not isinstance(value, bool) and isinstance(value, int) and value > 0
            if not (positive or (value is None and none_ok)):
                raise ValueError(f"{name} must be a positive integer{' or None' if none_ok else ''}, got {value!r}")
        self.temperature = _check_temperature(temperature)
        self.unlabeled, self.top_k, self.pool_size, self.objective = unlabeled, top_k, pool_size, objective
        self.finetune, self.finetune_steps = finetune, finetune_steps
        self.finetune_lr = check_number("finetune_lr", finetune_lr, 0, 1, low_open=True)   # of the main run's lr
        self.pool_report: dict = {}
        self.mined = None
        self.live_pool = None           # (ImageData of unlabeled images trained on, their teacher labels): live view

    def options(self):
        return {"temperature": self.temperature, "unlabeled": self.unlabeled, "top_k": self.top_k,
                "pool_size": self.pool_size, "objective": self.objective, "finetune": self.finetune,
                "finetune_steps": self.finetune_steps, "finetune_lr": self.finetune_lr}

    def finetune_stage(self):
        """PaddleClas's last SSLD step, on the labeled images only: ``"distill"`` the same label-free loss (an SSLD of
        L alone, the same objective and temperature), ``"ce"`` cross-entropy (:class:`kd_lab.methods.Scratch`);
        ``(method, finetune_steps, finetune_lr)``, or None for ``finetune="none"``."""
        if self.finetune == "none":
            return None
        if self.finetune == "ce":
            from .response import Scratch
            stage = Scratch(self.student)
        else:
            stage = SSLD(self.student, self.teacher, self.temperature, unlabeled="none", objective=self.objective)
        stage.name = f"{self.name} fine-tune ({self.finetune})"
        return stage, self.finetune_steps, self.finetune_lr

    def teacher_indices(self, train) -> torch.Tensor:
        """The training images the teacher was trained on, from its zoo recipe (the default recipe's otherwise)."""
        recipe = getattr(self.teacher, "zoo_info", {}).get("recipe") or recipes.RECIPES[self.teacher_recipe]
        return recipes.training_indices(recipe, train.y)

    def unlabeled_pool(self, train, labeled, test) -> torch.Tensor:
        """Indices into ``train`` of U: not seen by the teacher, not in ``labeled``, no duplicate of a ``test``
        image, no repeat; the first ``pool_size``. Counts go to ``self.pool_report``."""
        from ..mining import duplicates
        excluded = torch.zeros(len(train), dtype=torch.bool)
        seen = self.teacher_indices(train)
        excluded[seen] = True
        if len(seen) == len(train):
            raise ValueError("the teacher was trained on every training image, so none is unlabeled to it; SSLD "
                             "needs a teacher of part of the split, e.g. "
                             f"kd_lab.zoo.get_teacher(dataset, {self.teacher_recipe!r})")
        excluded[torch.arange(len(train)) if labeled is None else torch.as_tensor(labeled).cpu()] = True
        if self.held_out is not None:
            excluded[torch.as_tensor(self.held_out).cpu()] = True      # validation images are never trained on
        pool = torch.nonzero(~excluded).flatten()
        in_test, repeated = duplicates(train.x[pool.to(train.device)], test.x)
        clean = pool[~in_test & ~repeated][: self.pool_size]
        self.pool_report = {"teacher_images": len(seen), "pool": len(pool), "test_duplicates": int(in_test.sum()),
                            "repeats": int((repeated & ~in_test).sum()), "pool_used": len(clean)}
        return clean

    def training_set(self, train, labeled, test):
        """L ∪ the chosen part of U (an :class:`kd_lab.data.ImageData`); U's images carry the teacher's labels.
        ``train``/``test`` are the whole splits, ``labeled`` the indices of L (None: every image)."""
        from dataclasses import replace

        from ..mining import class_balance
        lab = torch.arange(len(train)) if labeled is None else torch.as_tensor(labeled).cpu()
        if self.unlabeled == "none":
            return train.subset(lab.to(train.device))
        pool = self.unlabeled_pool(train, labeled, test)
        if len(pool) == 0:
            import warnings
            warnings.warn("no unlabeled image is left (each one is labeled or was seen by the teacher): SSLD trains "
                          "on the labeled images only", stacklevel=2)
        chosen, teacher_labels = self._choose(train.subset(pool.to(train.device)))
        spread = torch.linspace(0, len(chosen) - 1, min(LIVE_POOL, len(chosen))).round().long().unique()
        shown = pool[chosen[spread]].to(train.device)          # the live view's images (all classes), hidden labels
        self.live_pool = (train.subset(shown), teacher_labels[spread].cpu())
        idx = torch.cat([lab, pool[chosen]]).to(train.device)
        y = torch.cat([train.y[lab.to(train.device)], teacher_labels.to(train.device)])
        hidden = train.y[pool[chosen].to(train.device)].cpu()         # only to measure the chosen images
        self.pool_report.update(unlabeled_used=len(chosen),             # NaN for both when none is chosen
                                precision=float((teacher_labels.cpu() == hidden).float().mean()),
                                balance=class_balance(torch.bincount(teacher_labels.cpu(),
                                                                     minlength=train.num_classes)))
        return replace(train.subset(idx), y=y)

    def _choose(self, pool) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in ``pool`` to train on, the teacher's labels of those images); ``pool.y`` is not read."""
        from ..mining import mine, teacher_probabilities
        if len(pool) == 0:
            return torch.empty(0, dtype=torch.long), torch.empty(0, dtype=torch.long)
        if self.unlabeled in _RULES:
            self.mined = mine(self.teacher, pool, self.top_k, rule=_RULES[self.unlabeled])
            return self.mined.indices, self.mined.labels
        return torch.arange(len(pool)), teacher_probabilities(self.teacher, pool).argmax(dim=1)

    def epoch_metrics(self, test) -> dict[str, float]:
        """``pool_precision`` and ``pool_balance`` of the unlabeled images trained on (class docstring); none
        without them."""
        if "precision" not in self.pool_report or not self.pool_report.get("unlabeled_used"):
            return {}
        return {"pool_precision": self.pool_report["precision"], "pool_balance": self.pool_report["balance"]}

    def live_view(self, test):
        """Lesson 02's live view: on the first ``LIVE_POOL`` unlabeled images trained on, the teacher's pseudo-labels,
        their hidden true labels (shown only, never trained on) and the student's predictions now
        (:func:`kd_lab.viz.plot_pseudo_label_view`). None when no unlabeled image is used."""
        if self.live_pool is None or len(self.live_pool[1]) == 0:
            return None
        from ..analysis import predict_logits
        images, pseudo = self.live_pool
        return {"kind": "pseudo_labels", "pseudo": pseudo, "hidden": images.y.cpu(),
                "student": predict_logits(self.student, images).argmax(1), "classes": list(test.classes),
                "unlabeled": self.unlabeled}

    def loss_terms(self, x, y, phase=None):
        """The label-free term only; ``y`` is not used."""
        s = self.student(x)                         # (B, K)
        t = self.teacher_output(x).logits           # (B, K), no grad (from the cache when fit has one)
        loss = losses.ssld_loss if self.objective == "ssld" else losses.kd_loss
        return {self.objective: loss(s, t, self.temperature)}
