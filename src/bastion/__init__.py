"""Bastion: secure machine-learning models across their whole life."""

__version__ = "0.1.0"

__all__ = ["__version__"]
