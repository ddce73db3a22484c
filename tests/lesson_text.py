"""What the second-edition lessons' tests share: a lesson's text types no result. Every number a student reads in
its prose is printed by a cell from a results file (or from a run in the notebook). :func:`typed_numbers` takes the
Markdown, removes what is not a measured number — LaTeX math, code (fenced blocks and inline spans), link targets,
section and list numbers, citations (author–year, venue–year, the References paragraph), the course's allow-list
and the lesson's own (names with digits, a quoted result on the line that names its source) — and returns each
digit-bearing word left."""
import re
from pathlib import Path

import jupytext

YEAR = r"(?:19|20)\d\d"
REMOVED = [                                               # (pattern, what it is), applied in this order
    (r"```.*?```", "a fenced code block (the Colab install cell)"),
    (r"\$\$.*?\$\$", "display math"),
    (r"\$[^$\n]+\$", "inline math"),
    (r"`[^`\n]*[^`\n\d.,%±+\- ][^`\n]*`", "an inline code span (a name or a command, not a bare number)"),
    (r"\]\([^)]*\)", "a link target"),
    (r"https?://\S+", "an address"),
    (r"(?m)^#+\s+\d+\.\s", "a section number"),
    (r"(?m)^\s*\d+\.\s", "a list number"),
    (rf"\b[A-Z][\w-]+ et al\.,? \(?{YEAR}\)?", "an author–year citation"),
    (rf"\([^()]*\b{YEAR}\)", "a parenthesised citation ending with its year"),
    (rf"\b(?:CVPR|ICCV|ECCV|NeurIPS|NIPS|ICLR|ICML)\s+{YEAR}", "a venue and year"),
]
ALLOWED = [                                               # names and conventions of every lesson with a digit
    r"\b[Ll]esson \d\d\b",                                # the course's lessons
    r"\b[Ss]ection \d+\b", r"\bExercise \d\b",            # the lesson's own sections and exercises
    r"\b95 %",                                            # the level of every interval
    r"\bipywidgets \d+\.\d+ as with \d+\b",               # software versions (the "Where it runs" note)
]


def prose(path: Path) -> str:
    """The Markdown cells' text, without the References paragraph."""
    cells = [c.source for c in jupytext.read(path).cells if c.cell_type == "markdown"]
    return "\n\n".join(re.split(r"\*\*References\.\*\*", text)[0] for text in cells)


def scrub(text: str, allowed=(), quote=None) -> str:
    """``text`` without what may hold a digit and is not a typed result (module docstring). ``allowed``: the
    lesson's own patterns; ``quote``: ``(source, must, quoted)``, the quoted strings allowed only on a line that
    holds both ``source`` and ``must`` (a paper's result next to its source)."""
    if quote is not None:
        source, must, quoted = quote
        text = "\n".join(_without(line, quoted) if source in line and must in line else line
                         for line in text.splitlines())
    for pattern, _ in REMOVED:
        text = re.sub(pattern, " ", text, flags=re.S)
    for pattern in (*ALLOWED, *allowed):
        text = re.sub(pattern, " ", text)
    return text


def _without(line: str, quoted) -> str:
    for q in quoted:
        line = line.replace(q, " ")
    return line


def typed_numbers(text: str, allowed=(), quote=None) -> list[str]:
    """Each digit-bearing word left after :func:`scrub`, with its line."""
    return [f"{word!r} in: {line.strip()}" for line in scrub(text, allowed, quote).splitlines()
            for word in re.findall(r"\S*[0-9]\S*", line)]


def text_and_code(path: Path) -> tuple[str, str]:
    """The whole Markdown file with its whitespace collapsed, and the source of its code cells."""
    return (" ".join(path.read_text().split()),
            "\n".join(c.source for c in jupytext.read(path).cells if c.cell_type == "code"))


def assert_reads_its_sweeps(path: Path, specs) -> None:
    """A reference-mode lesson names each of its sweeps' spec files (which exist, each with a committed results
    file), loads them with ``load_sweeps``, says how to re-run them, and says that its numbers are printed."""
    repo = path.resolve().parents[1]
    text, code = text_and_code(path)
    for spec in specs:
        assert f'"{spec}"' in code and (repo / "experiments" / f"{spec}.toml").exists(), spec
        assert (repo / "results" / f"{spec.replace('_', '-')}.csv").exists(), spec
    assert "Every number in this lesson's text is printed by a cell" in text
    assert "load_sweeps(SPECS)" in code and "live_mode()" in code and "KD_LAB_LIVE=1 make lab" in text
