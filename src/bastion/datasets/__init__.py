"""Loading arrays and tables, and the built-in demo data.

``load(source)`` is the one way a command turns a data source into arrays: a file (``.npz``, CSV,
Parquet), ``demo:NAME`` (the older spelling ``builtin:NAME`` is still read) or a registered
``dataset:NAME`` (through the ``bastion.data_sources`` entry point). It returns a ``DataFile`` (splits,
digest, feature and class names). Training commands add the input range on top of it with
``bastion.defenses.specs.load_training_data``.

Examples:
    >>> from bastion.datasets import load
    >>> load("demo:digits").splits.x_train.shape                      # doctest: +SKIP
    (1347, 1, 8, 8)
"""

from bastion.datasets.builtin import DEMO_DATASETS, DemoData, load_demo_data
from bastion.datasets.files import DataFile
from bastion.datasets.files import read_data_file as load

__all__ = ["DEMO_DATASETS", "DataFile", "DemoData", "load", "load_demo_data"]
