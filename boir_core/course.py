"""The notebooks as a course: their order, what each teaches, and the map each one opens with.

``show_course_map("03")`` displays the map of the seven notebooks with the current one marked ("you are here")
and a link to each; :func:`course_map` returns the same Markdown as text (the book and the tests read it).
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Lesson", "COURSE", "lesson", "course_map", "show_course_map"]


@dataclass(frozen=True)
class Lesson:
    number: str  # "01"
    stem: str  # the notebook's file name without extension
    title: str
    question: str  # the question the notebook answers, in a student's words


COURSE: tuple[Lesson, ...] = (
    Lesson("01", "01_data_and_targets", "Data and targets",
           "What does a single-stage pose model learn to predict, and from which labels?"),
    Lesson("02", "02_backbone_aspp_heads", "Backbone, ASPP neck and heads",
           "Which network turns an image into centers, embeddings and keypoints?"),
    Lesson("03", "03_bbox_mask_loss", "The Bbox Mask Loss",
           "How do boxes alone teach each person's embedding to stay inside that person?"),
    Lesson("04", "04_training", "Training",
           "What happens in one training step, and what does a whole schedule do?"),
    Lesson("05", "05_inference_and_evaluation", "Inference and evaluation",
           "How do dense maps become poses, and how is a pose scored (OKS, AP)?"),
    Lesson("06", "06_reproduce_tables", "Reproducing Tables 1-7",
           "Which of the paper's numbers can we check, and how sure can we be of a difference?"),
    Lesson("07", "07_representations", "What the representations look like",
           "Do BoIR's embeddings separate people better than CID's, in pictures and in a number?"),
)


def lesson(number: str) -> Lesson:
    """The lesson numbered ``number`` ("01" .. "07")."""
    for item in COURSE:
        if item.number == str(number).zfill(2):
            return item
    raise KeyError(f"no notebook {number!r} in the course; it has {[c.number for c in COURSE]}")


def course_map(current: str) -> str:
    """A Markdown list of the course, the ``current`` notebook in bold and marked "you are here"."""
    here = lesson(current)
    lines = ["**The course** (each notebook builds on the ones above it):", ""]
    for item in COURSE:
        name = f"{item.number} · {item.title}"
        if item == here:
            lines.append(f"- **{name} ← you are here**: {item.question}")
        else:
            lines.append(f"- [{name}]({item.stem}.ipynb): {item.question}")
    return "\n".join(lines)


def show_course_map(current: str) -> None:
    """Display :func:`course_map` in a notebook (as plain text outside one)."""
    text = course_map(current)
    try:
        # local: IPython is the notebooks' (optional) dependency, and only a notebook displays the map
        from IPython.display import Markdown, display
    except ImportError:  # pragma: no cover - IPython ships with the kit's notebook extra
        print(text)
        return
    display(Markdown(text))
