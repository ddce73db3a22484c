"""The checking machinery every lesson's exercises share: call the student's function and explain a crash,
check a returned tensor's type and shape, report ✅/❌ with a message, and grade a multiple-choice answer.
Each ``check_…`` built on them prints what is right or what is wrong (and a hint) and returns True or False;
it never raises on a wrong answer, so a notebook keeps running.
"""
from __future__ import annotations

import torch

__all__: list[str] = []  # private helpers only: the family modules import them by name


def _report(ok: bool, message: str) -> bool:
    """Print ``message`` after ✅ or ❌ and return ``ok``."""
    print(("✅ " if ok else "❌ ") + message)
    return ok


def _call(fn, *args):
    """``(fn(*args), None)``, or ``(None, why)`` when the student's ``fn`` raised."""
    try:
        return fn(*args), None
    except NotImplementedError:
        return None, "not implemented yet: replace `raise NotImplementedError` with your code"
    except Exception as err:  # noqa: BLE001 - the student's code may fail in any way; we explain it
        return None, f"your function raised {type(err).__name__}: {err}"


def _check_tensor(out, shape) -> str | None:
    """What is wrong with ``out`` if it is not a tensor of ``shape``; None when it is."""
    if out is None:
        return "your function returned None: did you forget `return`?"
    if not isinstance(out, torch.Tensor):
        return f"expected a torch.Tensor, got {type(out).__name__}"
    if tuple(out.shape) != tuple(shape):
        return f"expected shape {tuple(shape)}, got {tuple(out.shape)}"
    return None


def _multiple_choice(answer: str, choices: dict, right: str, why_not: dict, why_right: str) -> bool:
    """Report on a multiple-choice ``answer``: not a choice, a wrong one (with ``why_not[answer]``), or right."""
    if answer not in choices:
        return _report(False, f"answer={answer!r} is not one of {sorted(choices)}")
    if answer != right:
        return _report(False, f"not ({answer}): {why_not[answer]}")
    return _report(True, why_right)
