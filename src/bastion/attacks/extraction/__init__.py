"""Model extraction (theft): learning-based Knockoff/Copycat and equation solving."""

from bastion.attacks.extraction.equation_solving import EquationSolvingResult, extract_softmax_regression
from bastion.attacks.extraction.knockoff import (
    BudgetedModel,
    ExtractionConfig,
    ExtractionPoint,
    ExtractionResult,
    run_extraction,
)

__all__ = [
    "BudgetedModel",
    "EquationSolvingResult",
    "ExtractionConfig",
    "ExtractionPoint",
    "ExtractionResult",
    "extract_softmax_regression",
    "run_extraction",
]
