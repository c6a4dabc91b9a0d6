"""Security training: six hands-on labs on the demo models, a quiz per lab, and completion records.

Examples:
    >>> from bastion.govern.training import LABS, lab
    >>> sorted(LABS)
    [1, 2, 3, 4, 5, 6]
    >>> lab(1).title
    'Craft an adversarial example that fools the digits model'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

from bastion.core.errors import InvalidInputError
from bastion.govern.training.base import Lab, LabCheck, LabSetup
from bastion.govern.training.lab_evasion import EvasionLab
from bastion.govern.training.lab_extraction import ExtractionLab
from bastion.govern.training.lab_incident import IncidentLab
from bastion.govern.training.lab_poisoning import PoisoningLab
from bastion.govern.training.lab_privacy import PrivacyLab
from bastion.govern.training.lab_supply import SupplyChainLab

LABS: dict[int, Lab] = {
    lab.number: lab
    for lab in (EvasionLab(), PoisoningLab(), PrivacyLab(), ExtractionLab(), SupplyChainLab(), IncidentLab())
}
QUIZ_PASS = 2 / 3

__all__ = [
    "LABS", "QUIZ_PASS", "Lab", "LabCheck", "LabSetup", "Question", "grade_quiz", "lab", "quiz",
]


def lab(number: int) -> Lab:
    if number not in LABS:
        raise InvalidInputError(f"no lab {number}; labs are {', '.join(map(str, sorted(LABS)))}")
    return LABS[number]


@dataclass(frozen=True)
class Question:
    q: str
    choices: tuple[str, ...]
    answer: int


@cache
def _quizzes() -> dict[int, tuple[Question, ...]]:
    doc = yaml.safe_load(resources.files("bastion.govern.training").joinpath("quizzes.yaml").read_text("utf-8"))
    return {int(k): tuple(Question(q["q"], tuple(q["choices"]), int(q["answer"])) for q in v) for k, v in doc.items()}


def quiz(number: int) -> tuple[Question, ...]:
    lab(number)
    return _quizzes()[number]


def grade_quiz(number: int, answers: list[str]) -> dict[str, Any]:
    """Grade answers given as letters (``a``, ``b`` …) or 1-based numbers; returns score and feedback."""
    questions = quiz(number)
    if len(answers) != len(questions):
        raise InvalidInputError(f"lab {number}'s quiz has {len(questions)} questions; got {len(answers)} answers")
    picked = []
    for i, a in enumerate(answers):
        a = a.strip().lower()
        idx = ord(a) - ord("a") if len(a) == 1 and a.isalpha() else int(a) - 1 if a.isdigit() else -1
        if not 0 <= idx < len(questions[i].choices):
            raise InvalidInputError(f"answer {i + 1} {a!r}: choose a–{chr(ord('a') + len(questions[i].choices) - 1)}")
        picked.append(idx)
    correct = [p == q.answer for p, q in zip(picked, questions, strict=True)]
    score = sum(correct) / len(questions)
    return {"lab": number, "score": round(score, 4), "passed": score >= QUIZ_PASS - 1e-9, "correct": correct,
            "feedback": [f"{'✓' if ok else '✗'} {q.q} → {q.choices[q.answer]}" for ok, q in zip(correct, questions,
                                                                                            strict=True)]}
