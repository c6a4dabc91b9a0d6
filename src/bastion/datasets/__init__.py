"""Loading arrays and tables, and the built-in demo data."""

from bastion.datasets.builtin import DEMO_DATASETS, DemoData, load_demo_data

__all__ = ["DEMO_DATASETS", "DemoData", "load_demo_data"]
