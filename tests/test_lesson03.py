"""Lesson 03's text types no result (:mod:`lesson_text`), it reads its four sweeps and names their devices, its
experiments pair every arm with the same pair trained alone, and it checks outputs only where they are
deterministic."""
from pathlib import Path

import jupytext
import lesson_text
import pytest

REPO = Path(__file__).resolve().parents[1]
LESSON = REPO / "notebooks" / "03_dml.md"
SPECS = ("03_dml_regimes", "03_dml_pairings", "03_dml_spread", "03_dml_cost")

ALLOWED = [                                               # names with digits of the papers and code the lesson cites
    r"CIFAR-100", r"Market-1501", r"ResNet-32", r"WRN-28-10", r"InceptionV1", r"PP-OCRv2",
    r"arXiv:\d{4}\.\d{5}(?:, \d{4})?", r"Biometrika \d+", r"\b(?:Algorithm|Table) \d\b", r"\btop-1\b",
    r"\b[Pp]eer \d\b",                                    # the peers' indices (peer 0 is the student)
]


def typed_numbers(text: str) -> list[str]:
    return lesson_text.typed_numbers(text, ALLOWED)


def test_no_number_is_typed_in_the_lessons_text():
    found = typed_numbers(lesson_text.prose(LESSON))
    assert not found, "numbers typed in lesson 03's Markdown (print them from a cell instead):\n" + "\n".join(found)


@pytest.mark.parametrize("text", [
    "DML moved the student by +0.61 ± 0.47 points.",
    "the tiny peer lost 0.41 points",
    "agreement rose from 87.9 % to 91.5 %",
    "with 4,000 labels DML hurts",
    "a DML pair took 30 s; the teacher 1,990 s",
])
def test_a_typed_result_is_caught(text):
    assert typed_numbers(text)


def test_the_lesson_reads_its_sweeps_and_says_so():
    lesson_text.assert_reads_its_sweeps(LESSON, SPECS)
    text, code = lesson_text.text_and_code(LESSON)
    assert "my_prediction = None" in code and "check_prediction(my_prediction" in code
    assert "stats.spread_ratio" in code and "symmetric=True" in code
    for claim in ("+0.61", "within noise, at best about half a point", "33 minutes"):   # the first edition's
        assert claim not in text


def test_outputs_are_checked_only_where_they_are_deterministic():
    checked = [c.source for c in jupytext.read(LESSON).cells
               if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all("sweeps[" not in s and "regimes" not in s and "pairings" not in s and "panel" not in s
                           and "train_method" not in s for s in checked)
