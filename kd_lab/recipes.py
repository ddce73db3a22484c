"""Teacher recipes: everything that decides a teacher's trained weights, as plain data.

A recipe names the model preset, the optimizer settings, the epochs and the part of the training split
the teacher learns from. :mod:`kd_lab.zoo` trains and caches teachers by recipe (the file name carries a
hash of it); SSLD (:mod:`kd_lab.methods.label_free`) reads which images its teacher saw
(:func:`training_indices`) to keep them out of its unlabeled pool. This module imports neither
:mod:`kd_lab.methods` nor :mod:`kd_lab.zoo`.
"""
from __future__ import annotations

import torch

from .data import labeled_split

__all__ = ["RECIPES", "METADATA", "DEFAULT_MIN_ACCURACY", "resolve_recipe", "trained_part", "min_accuracy",
           "training_indices"]

# A recipe is everything that decides the trained weights; its hash names the file. ``min_accuracy`` is not
# part of that (METADATA): it is the floor of test accuracy (0..1) below which a teacher trained by the recipe
# is taken for a diverged run and refused by the zoo, neither saved nor loaded. The floors sit well above
# chance (10 %) and below what the recipe reaches on each data set of the course (full on Fashion-MNIST:
# 94.3 %, first20k: 92.2 %, quick: 85.7 %; CIFAR-10, the hardest, is lower), so they catch a run that
# learned nothing, not a weak one.
RECIPES: dict[str, dict] = {
    "full": {"preset": "teacher", "epochs": 15, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
             "optimizer": "sgd", "augment": True, "train_size": None, "seed": 0, "min_accuracy": 0.5},
    "quick": {"preset": "teacher-small", "epochs": 2, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
              "optimizer": "sgd", "augment": True, "train_size": 20000, "seed": 0, "min_accuracy": 0.25},
    # Teachers of a fixed part of the training split (lesson 02, SSLD): they never saw the images from
    # 20,000 on, which SSLD's student then uses as unlabeled data. The split is part of the key and name.
    "first20k": {"preset": "teacher-small", "epochs": 20, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
                 "optimizer": "sgd", "augment": True, "train_size": None, "train_range": [0, 20000], "seed": 0,
                 "min_accuracy": 0.4},
    "first20k-quick": {"preset": "teacher-small", "epochs": 2, "batch_size": 128, "lr": 0.1, "weight_decay": 5e-4,
                       "optimizer": "sgd", "augment": True, "train_size": None, "train_range": [0, 20000],
                       "seed": 0, "min_accuracy": 0.25},
}

METADATA = ("min_accuracy",)      # recipe fields that do not decide the weights: not in the key, the name, the file
DEFAULT_MIN_ACCURACY = 2.0        # × chance (1 / classes): the floor of a recipe that names none (20 % of 10 classes)


def trained_part(recipe: dict) -> dict:
    """The fields of ``recipe`` that decide the trained weights (all but :data:`METADATA`): what the zoo hashes
    into the file name and stores in the file, so that adding metadata never renames a teacher."""
    return {k: v for k, v in recipe.items() if k not in METADATA}


def min_accuracy(recipe: dict, num_classes: int = 10) -> float:
    """The lowest test accuracy (0..1) the zoo accepts from a teacher of ``recipe``: its ``min_accuracy``, else
    :data:`DEFAULT_MIN_ACCURACY` times chance."""
    floor = recipe.get("min_accuracy")
    return DEFAULT_MIN_ACCURACY / num_classes if floor is None else float(floor)


def resolve_recipe(name_or_recipe) -> dict:
    """A copy of recipe ``name_or_recipe`` (a name of :data:`RECIPES`, or a recipe dict)."""
    if isinstance(name_or_recipe, dict):
        return dict(name_or_recipe)
    if name_or_recipe not in RECIPES:
        raise ValueError(f"unknown teacher recipe {name_or_recipe!r}; choose one of {sorted(RECIPES)}")
    return dict(RECIPES[name_or_recipe])


def training_indices(recipe, labels: torch.Tensor) -> torch.Tensor:
    """The indices (sorted, on the CPU) of the training images a recipe's teacher is trained on.

    ``train_range: [a, b]`` gives images a..b-1; ``train_size: n`` a seeded class-balanced subset of n
    (:func:`kd_lab.data.labeled_split`); neither gives the whole split.
    """
    recipe, n = resolve_recipe(recipe), len(labels)
    if recipe.get("train_range"):
        a, b = recipe["train_range"]
        if not 0 <= a < b <= n:
            raise ValueError(f"train_range {recipe['train_range']} must satisfy 0 <= a < b <= {n} (the split's size)")
        return torch.arange(a, b)
    if recipe["train_size"]:
        return labeled_split(labels, recipe["train_size"], seed=recipe["seed"]).labeled
    return torch.arange(n)
