"""Lesson 01's text types no result (:mod:`lesson_text`: every number a student reads in its prose is printed by a
cell from a results file or a run in the notebook), it reads its sweeps, and checks outputs only where they are
deterministic."""
from pathlib import Path

import jupytext
import lesson_text
import pytest

REPO = Path(__file__).resolve().parents[1]
LESSON = REPO / "notebooks" / "01_response_kd.md"

ALLOWED = [r"CIFAR-100", r"ResNet32×4", r"ResNet8×4"]    # data set and architecture names of the paper
# The one quoted result of another paper, allowed only on the line that names its source.
PAPER_QUOTE = ("Zhao et al.", "Table 1", ["73.33 %", "76.32 %", "Table 1"])


def typed_numbers(text: str) -> list[str]:
    return lesson_text.typed_numbers(text, ALLOWED, PAPER_QUOTE)


def prose() -> str:
    return lesson_text.prose(LESSON)


def test_no_number_is_typed_in_the_lessons_text():
    found = typed_numbers(prose())
    assert not found, "numbers typed in lesson 01's Markdown (print them from a cell instead):\n" + "\n".join(found)


@pytest.mark.parametrize("text", [
    "KD reached 87.21 % on three seeds.",
    "With all 60,000 labels KD gives no gain.",
    "it gained 1.5 points after 30 epochs",
    "DKD (β = 8) was below KD",
    "the best setting is `dkd β=2` with `+1.20`",
    "ResNet8×4 student: KD 73.33 % (our run, no source on this line)",
])
def test_a_typed_result_is_caught(text):
    assert typed_numbers(text)


@pytest.mark.parametrize("text", [
    "## 7. When does KD help?",
    "1. explain why a student learns",
    "Lesson 04 distils features, lesson 05 relations; see section 11 and Exercise 2.",
    "at $T = 4$ and $\\alpha = 0.9$: $$\\mathrm{KL} = \\sum_i p_i$$",
    "run `python -m kd_lab sweep experiments/01_controls.toml` with `KD_LAB_QUICK=1`",
    "Hinton, Vinyals & Dean (2015) and Zhao et al. (2022); (Müller, Kornblith & Hinton, 2019), CVPR 2022",
    "its 95 % Student-t interval",
    'KD reached 73.33 % and DKD 76.32 % (Zhao et al., "Decoupled Knowledge Distillation", CVPR 2022, Table 1).',
    "[![Open](https://x.org/badge1.svg)](https://x.org/01_response_kd.ipynb)",
])
def test_what_is_not_a_typed_result_passes(text):
    assert typed_numbers(text) == []


def test_the_lesson_reads_its_sweeps_and_says_so():
    text = " ".join(LESSON.read_text().split())
    code = "\n".join(c.source for c in jupytext.read(LESSON).cells if c.cell_type == "code")
    for spec in ("01_label_budget", "01_controls", "01_dkd", "01_temperature_alpha"):
        assert f'"{spec}"' in code
        assert (REPO / "experiments" / f"{spec}.toml").exists()
    assert "Every number in this lesson's text is printed by a cell" in text
    assert "live_mode()" in code and ".devices" in code and "KD_LAB_LIVE=1 make lab" in code
    assert "my_prediction = None" in code and "check_prediction(my_prediction" in code
    for claim in ("60,000", "30 epochs", "three times KD's spread"):
        assert claim not in text


def test_outputs_are_checked_only_where_they_are_deterministic():
    checked = [c.source for c in jupytext.read(LESSON).cells
               if c.cell_type == "code" and "NBVAL_CHECK_OUTPUT" in c.source]
    assert checked and all("lesson_results" not in s and "sweeps[" not in s and "train_student" not in s
                           and "panel" not in s for s in checked)
