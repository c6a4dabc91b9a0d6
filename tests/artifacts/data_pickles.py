"""Everyday data pickles, made in the test session by the libraries themselves (nothing vendored).

``build_benign(d)`` writes pandas frames/series/indexes (strings — object, python and pyarrow
storage — categoricals, naive and tz-aware datetimes, timedeltas, periods, intervals, sparse,
nullable and Arrow dtypes, multi-index rows and columns), numpy arrays of many dtypes, fitted
scikit-learn pipelines (ColumnTransformer + StandardScaler/OneHotEncoder + LogisticRegression,
RandomForest, HistGradientBoosting with categorical features) and ``__future__``/``len([])``
objects, each with ``pickle`` protocols 2–5, ``joblib.dump`` and ``DataFrame.to_pickle``. All
must scan safe.

``build_gadgets(d, marker)`` writes hand-made pickles that abuse the same allowlisted libraries
(pandas readers/eval/query/plotting backends, allowlisted reconstructors fed an unknown class,
``getattr`` beyond the allowed attribute, ``len`` on a built object, short pyarrow buffers,
``__class__`` in BUILD state). Each one would only touch ``marker``; all must be high or critical.
"""

from __future__ import annotations
import __future__

import datetime
import pickle
import zoneinfo
from pathlib import Path
from typing import Any

import numpy as np

PROTOCOLS = (2, 3, 4, 5)


def _frames() -> dict[str, Any]:
    import pandas as pd

    paris = zoneinfo.ZoneInfo("Europe/Paris")
    dates = pd.date_range("2024-01-01", periods=3, freq="D")
    return {
        "df_mixed": pd.DataFrame({"a": [1, 2, 3], "b": [1.5, 2.5, None], "s": ["x", "y", "z"],
                                  "o": pd.array(["p", None, "r"], dtype=object)}),
        "df_strings": pd.DataFrame({"py": pd.array(["a", None, "c"], dtype="string[python]"),
                                    "pa": pd.array(["a", None, "ccc"], dtype="string[pyarrow]"),
                                    "default": ["é", "ü", ""]}),
        "df_categorical": pd.DataFrame({"c": pd.Categorical(["lo", "hi", "lo"], categories=["lo", "hi"], ordered=True),
                                        "ci": pd.Categorical([1, 2, 1])}),
        "df_datetimes": pd.DataFrame({"naive": dates, "paris": dates.tz_localize(paris), "utc": dates.tz_localize("UTC"),
                                      "fixed": dates.tz_localize(datetime.timezone(datetime.timedelta(hours=5))),
                                      "td": pd.to_timedelta([1, 2, 3], unit="s")}),
        "df_multiindex": pd.DataFrame(np.arange(6).reshape(2, 3),
                                      columns=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)]),
                                      index=pd.MultiIndex.from_arrays([["x", "y"], dates[:2]], names=["k", "t"])),
        "df_nullable": pd.DataFrame({"i": pd.array([1, None, 3], dtype="Int64"), "u": pd.array([1, None, 3], dtype="UInt8"),
                                     "f": pd.array([1.0, None, 3.0], dtype="Float64"),
                                     "b": pd.array([True, None, False], dtype="boolean")}),
        "df_arrow": pd.DataFrame({"i": pd.array([1, 2, None], dtype="int64[pyarrow]"),
                                  "f": pd.array([1.0, None, 2.0], dtype="float64[pyarrow]"),
                                  "b": pd.array([True, None, False], dtype="bool[pyarrow]"),
                                  "t": pd.array([dates[0], None, dates[2]], dtype="timestamp[ns, tz=UTC][pyarrow]"),
                                  "d": pd.array([pd.Timedelta("1D"), None, None], dtype="duration[s][pyarrow]")}),
        "series": pd.Series([1, 2, 3], name="x", index=pd.Index(["a", "b", "c"])),
        "series_period": pd.Series(pd.period_range("2024-01", periods=3, freq="M")),
        "series_interval": pd.Series(pd.interval_range(0, 3)),
        "series_sparse": pd.Series(pd.arrays.SparseArray([0, 0, 1])),
        "indexes": [pd.Index([1, 2, 3]), pd.RangeIndex(10), pd.CategoricalIndex(["a", "b"]),
                    pd.DatetimeIndex(["2024-01-01", "2024-02-01"], tz="UTC"), pd.timedelta_range("1D", periods=3),
                    pd.date_range("2024-01-01", periods=4, freq="B")],
        "scalars": [pd.Timestamp("2024-01-01", tz=paris), pd.Timedelta("1D"), pd.NaT, pd.NA, pd.Period("2024-01", "M"),
                    pd.Interval(0, 1), pd.offsets.MonthEnd(2), pd.offsets.CustomBusinessDay(holidays=["2024-01-01"])],
    }


def _arrays() -> dict[str, Any]:
    kinds = ["float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint64", "bool",
             "complex64", "complex128"]
    return {
        "numpy_numeric": {k: np.arange(4).astype(k) for k in kinds},
        "numpy_other": [np.array(["2024-01-01"], dtype="datetime64[ns]"), np.array([1], dtype="timedelta64[s]"),
                        np.array(["ab", "c"]), np.array([b"ab"]), np.array([1, "x", None], dtype=object),
                        np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]), np.ma.masked_array([1, 2], [0, 1]),
                        np.float64(1.5), np.int32(3), np.bool_(True), np.datetime64("2024-01-01"),
                        np.asfortranarray(np.ones((3, 2))), np.random.RandomState(0), np.random.default_rng(1)],
        "future_and_len": {"features": [__future__.annotations, __future__.division], "n": len, "m": max},
    }


def _pipelines() -> dict[str, Any]:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(7)
    x = pd.DataFrame({"age": rng.integers(18, 90, 80), "income": rng.normal(5e4, 1e4, 80),
                      "city": rng.choice(["paris", "lyon", "nice"], 80), "segment": rng.choice(["a", "b"], 80)})
    y = (x["income"] > 5e4).astype(int)
    ct = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                            ("cat", OneHotEncoder(handle_unknown="ignore"), ["city", "segment"])])
    x_cat = x.assign(city=x["city"].astype("category"), segment=x["segment"].astype("category"))
    return {
        "sk_logreg": Pipeline([("ct", ct), ("lr", LogisticRegression(max_iter=200))]).fit(x, y),
        "sk_forest": Pipeline([("ct", ct), ("rf", RandomForestClassifier(n_estimators=4, random_state=0))]).fit(x, y),
        "sk_hgb": HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype").fit(x_cat, y),
    }


def build_benign(d: Path) -> dict[str, Path]:
    """Write every everyday object with each protocol and joblib; returns {file name: path}."""
    import joblib
    import pandas as pd

    out: dict[str, Path] = {}
    objects = {**_frames(), **_arrays(), **_pipelines()}
    for name, obj in objects.items():
        for proto in PROTOCOLS:
            out[f"{name}_p{proto}.pkl"] = d / f"{name}_p{proto}.pkl"
            out[f"{name}_p{proto}.pkl"].write_bytes(pickle.dumps(obj, protocol=proto))
        out[f"{name}.joblib"] = d / f"{name}.joblib"
        joblib.dump(obj, out[f"{name}.joblib"])
        if isinstance(obj, pd.DataFrame | pd.Series):
            out[f"{name}.pd.pkl"] = d / f"{name}.pd.pkl"
            obj.to_pickle(out[f"{name}.pd.pkl"])
    out["df_mixed.pd.pkl.gz"] = d / "df_mixed.pd.pkl.gz"
    objects["df_mixed"].to_pickle(out["df_mixed.pd.pkl.gz"])
    out["sk_forest_z.joblib"] = d / "sk_forest_z.joblib"
    joblib.dump(objects["sk_forest"], out["sk_forest_z.joblib"], compress=3)
    return out


# -- gadgets ---------------------------------------------------------------------------------------
def _u(s: str) -> bytes:
    b = s.encode()
    return b"\x8c" + bytes([len(b)]) + b if len(b) < 256 else b"X" + len(b).to_bytes(4, "little") + b


def _g(module: str, name: str) -> bytes:
    return _u(module) + _u(name) + b"\x93"


def _call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def build_gadgets(d: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """{name: (path, expected code)}: pickles that abuse allowlisted libraries; none may scan below high."""
    cmd = f"touch {marker}"
    py = f"import os; os.system({cmd!r})"
    p4 = b"\x80\x04"
    csv = d / "x.csv"
    cases: dict[str, tuple[bytes, str]] = {
        "pandas_read_pickle": (p4 + _call(_g("pandas", "read_pickle"), _u(str(d / "evil.pkl"))) + b".",
                               "PICKLE_DANGEROUS_CALL"),
        "pandas_io_read_csv": (p4 + _call(_g("pandas.io.parsers.readers", "read_csv"), _u(str(csv))) + b".",
                               "PICKLE_DANGEROUS_CALL"),
        "pandas_read_csv_toplevel": (p4 + _call(_g("pandas", "read_csv"), _u(str(csv))) + b".", "PICKLE_DANGEROUS_CALL"),
        "pandas_eval": (p4 + _call(_g("pandas", "eval"), _u(py)) + b".", "PICKLE_DANGEROUS_CALL"),
        "pandas_computation_eval": (p4 + _call(_g("pandas.core.computation.eval", "eval"), _u("1+1")) + b".",
                                    "PICKLE_DANGEROUS_CALL"),
        "pandas_query_dotted": (p4 + _call(_g("pandas", "DataFrame.query"), _u("a > 1")) + b".",
                                "PICKLE_DANGEROUS_CALL"),
        "pandas_set_option_backend": (p4 + _call(_g("pandas", "set_option"), _u("plotting.backend"), _u("os")) + b".",
                                      "PICKLE_DANGEROUS_CALL"),
        "pandas_plotting_backend": (p4 + _call(_g("pandas.plotting._core", "_load_backend"), _u("os")) + b".",
                                    "PICKLE_DANGEROUS_CALL"),
        "pandas_to_pickle_dotted": (p4 + _call(_g("pandas", "DataFrame.to_pickle"), _u(str(marker))) + b".",
                                    "PICKLE_DANGEROUS_CALL"),
        "numpy_fromfile": (p4 + _call(_g("numpy", "fromfile"), _u("/etc/passwd")) + b".", "PICKLE_DANGEROUS_CALL"),
        "getattr_dataframe_query": (p4 + _call(_g("builtins", "getattr"), _g("pandas", "DataFrame"), _u("query"))
                                    + b".", "PICKLE_DANGEROUS_CALL"),
        "getattr_zoneinfo_other": (p4 + _call(_call(_g("builtins", "getattr"), _g("zoneinfo", "ZoneInfo"),
                                                    _u("from_file")), _u("/etc/passwd")) + b".",
                                   "PICKLE_DANGEROUS_CALL"),
        "getattr_computed_owner": (p4 + _call(_g("builtins", "getattr"), _call(_g("builtins", "dict")), _u("get"))
                                   + b".", "PICKLE_DANGEROUS_CALL"),
        "new_index_unknown_class": (p4 + _call(_g("pandas.core.indexes.base", "_new_Index"),
                                               _g("evil_pkg.gadgets", "Spawner"), b"}") + b".", "PICKLE_UNKNOWN_CALL"),
        "ndarraybacked_unknown_class": (p4 + _call(_g("pandas._libs.arrays", "__pyx_unpickle_NDArrayBacked"),
                                                   _g("evil_pkg.gadgets", "Spawner"), b"K\x00N") + b".",
                                        "PICKLE_UNKNOWN_CALL"),
        "reconstructor_unknown_base": (p4 + _call(_g("copyreg", "_reconstructor"), _g("builtins", "object"),
                                                  _g("evil_pkg.gadgets", "Spawner"), _u(cmd)) + b".",
                                       "PICKLE_UNKNOWN_CALL"),
        "len_on_object": (p4 + _call(_g("builtins", "len"), _call(_g("evil_pkg.gadgets", "Sized"))) + b".",
                          "PICKLE_CALL_ARGUMENTS"),
        "max_with_key_object": (p4 + _call(_g("builtins", "max"), _call(_g("pandas", "DataFrame"))) + b".",
                                "PICKLE_CALL_ARGUMENTS"),
        "future_other_name": (p4 + _call(_g("__future__", "_Feature.__init__"), _u("x")) + b".",
                              "PICKLE_DANGEROUS_CALL"),
        "future_module_attr": (p4 + _g("__future__", "sys") + b".", "PICKLE_DANGEROUS_GLOBAL"),
        "dataframe_class_swap": (p4 + _g("pandas", "DataFrame") + b")\x81}" + _u("__class__")
                                 + _g("evil_pkg.gadgets", "Spawner") + b"sb.", "PICKLE_BUILD_DUNDER_STATE"),
        "arrow_short_buffer": (p4 + _call(_g("pyarrow.lib", "_restore_array"), b"(" + _call(
            _g("pyarrow.lib", "type_for_alias"), _u("large_string")) + b"J\x00\x00\x01\x00K\x00K\x00]("
            + _call(_g("pyarrow.lib", "py_buffer"), b"C\x10" + bytes(16))
            + _call(_g("pyarrow.lib", "py_buffer"), b"C\x01a") + b"N" + b"e]Nt") + b".", "PICKLE_CALL_ARGUMENTS"),
        "arrow_nested_type": (p4 + _call(_g("pyarrow.lib", "_restore_array"), b"(" + _call(
            _g("pyarrow.lib", "type_for_alias"), _u("list<item: int64>")) + b"K\x01K\x00K\x00]N]Nt") + b".",
                              "PICKLE_CALL_ARGUMENTS"),
        "py_buffer_over_object": (p4 + _call(_g("pyarrow.lib", "py_buffer"), _call(_g("numpy", "ndarray"), b"K\x04"))
                                  + b".", "PICKLE_CALL_ARGUMENTS"),
    }
    out: dict[str, tuple[Path, str]] = {}
    for name, (data, code) in cases.items():
        p = d / f"{name}.pkl"
        p.write_bytes(data)
        out[name] = (p, code)
    return out
