"""``build_target``: turn CLI-style inputs (a demo name, or model + data) into a validated ``Target``.

The data is checked against the model before any check runs: the per-sample shape must match
the model's input, labels must lie in ``0..n_classes-1``, and the model must answer a probe
batch. Fingerprints are the sha256 of the model file and of the data file.

Examples:
    >>> t = build_target(demo="digits")                                        # doctest: +SKIP
    >>> t = build_target(model="cnn.onnx", data="eval.npz", clip_min=0, clip_max=1)  # doctest: +SKIP
    >>> t = build_target(endpoint="http://127.0.0.1:8000/v1/models/m/predict",       # doctest: +SKIP
    ...                  data="eval.npz", query_budget=5000)
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np

from bastion.core.domain import InputRange, infer_range
from bastion.core.errors import ConfigError, InvalidInputError, ModelLoadError
from bastion.core.model import InputSpec, ModelAdapter
from bastion.core.target import DataSplits, Target, TargetMetadata


def _demo(name: str, clip_min: float | None, clip_max: float | None) -> Target:
    from bastion.models.adapters import TorchAdapter
    from bastion.models.loaders import scan_model_file
    from bastion.models.zoo import DEMO_TARGETS, demo_model_path, demo_target

    if name not in DEMO_TARGETS:
        raise ConfigError(f"unknown demo {name!r}; choose one of {', '.join(DEMO_TARGETS)}")
    scan = scan_model_file(demo_model_path(name))  # the zoo cache is a file like any other: scan before loading
    target = demo_target(name)
    target.metadata.extra["scan"] = scan
    if clip_min is not None or clip_max is not None:
        spec = target.model.input_spec
        spec = replace(
            spec,
            clip_min=spec.clip_min if clip_min is None else float(clip_min),
            clip_max=spec.clip_max if clip_max is None else float(clip_max),
            range_source="flag" if clip_min is not None and clip_max is not None else "clip_min: {}, clip_max: {}".format(
                "model" if clip_min is None else "flag", "model" if clip_max is None else "flag"),
        )
        if isinstance(target.model, TorchAdapter):
            target.model = TorchAdapter(target.model.module, spec, n_classes=target.model.n_classes)
        else:
            raise ConfigError(f"--clip-min/--clip-max cannot be changed for the demo {name!r}")
    return target


def _validate(target: Target) -> None:
    """Shape, label range and a probe prediction: fail before the checks run."""
    from bastion.datasets.files import check_labels
    from bastion.models.adapters import check_batch

    spec = target.model.input_spec
    k = target.model.n_classes
    if k < 2:
        raise InvalidInputError(f"the model has {k} output class(es); Bastion assesses classifiers with ≥ 2 classes")
    check_labels(target.data, k, target.data_path or "data")
    for name in ("x_train", "x_test", "x_pop"):
        x = getattr(target.data, name)
        if x is None:
            continue
        if int(np.prod(x.shape[1:])) != spec.n_features:
            raise InvalidInputError(
                f"{target.data_path}: {name} samples are shaped {tuple(x.shape[1:])}, "
                f"the model expects {spec.shape}"
            )
        if tuple(x.shape[1:]) != tuple(spec.shape):
            setattr(target.data, name, check_batch(x, spec))
        below = spec.clip_min is not None and float(x.min()) < spec.clip_min - 1e-6
        above = spec.clip_max is not None and float(x.max()) > spec.clip_max + 1e-6
        if below or above:
            raise InvalidInputError(
                f"{target.data_path}: {name} has values in [{float(x.min()):.4g}, {float(x.max()):.4g}], "
                f"outside the model's range [{spec.clip_min}, {spec.clip_max}]; fix --clip-min/--clip-max"
            )
    x_eval, _ = target.data.eval_split()
    probs = target.model.predict_proba(x_eval[:2])
    if probs.shape != (min(2, len(x_eval)), k):
        raise ModelLoadError(f"the model answered {probs.shape} for 2 samples; expected (2, {k})")


def resolve_data_range(adapter: ModelAdapter, splits: DataSplits, image_data: bool) -> InputRange:
    """The adapter's input range: as the loader resolved it (flag, sidecar, model), else inferred from the data.

    The inferred range is set on the adapter, so every attack and defence uses it.
    """
    from bastion.models.adapters import set_input_range

    spec = adapter.input_spec
    if spec.range_source is not None:
        return InputRange(spec.clip_min, spec.clip_max, spec.range_source)
    arrays = [x for x in (splits.x_train, splits.x_test, splits.x_pop) if x is not None and len(x)]
    rng = infer_range(arrays, image=image_data or len(spec.shape) >= 2)
    set_input_range(adapter, rng.clip_min, rng.clip_max, rng.source)
    return rng


def build_target(
    model: str | Path | None = None,
    data: str | Path | None = None,
    demo: str | None = None,
    endpoint: str | None = None,
    query_budget: int | None = None,
    label: str | None = None,
    clip_min: float | None = None,
    clip_max: float | None = None,
    seed: int = 0,
    white_box: bool = True,
) -> Target:
    """A validated ``Target`` from a demo name, or a model file / endpoint plus a data file.

    ``seed`` is recorded with the target; demo models are always the cached seed-0 models so
    the same demo gives the same model across runs.
    """
    if demo is not None:
        if model is not None or data is not None or endpoint is not None:
            raise ConfigError("--demo cannot be combined with --model, --data or --endpoint")
        target = _demo(demo, clip_min, clip_max)
        target.metadata.extra["seed"] = seed
        return target
    if model is None and endpoint is None:
        raise ConfigError("nothing to assess: pass --demo NAME, or --model FILE (or --endpoint URL) with --data FILE")
    if data is None:
        raise ConfigError("--data FILE is needed with --model/--endpoint (labelled evaluation data)")
    from bastion.datasets import load
    from bastion.models.loaders import load_model, model_info

    dfile = load(data, label=label)
    spec = InputSpec(shape=dfile.sample_shape)
    adapter = load_model(
        model, endpoint=endpoint, query_budget=query_budget, input_spec=spec,
        clip_min=clip_min, clip_max=clip_max, white_box=white_box,
        n_classes=None,
    )
    if endpoint is not None:
        from bastion.models.remote import RemoteAdapter

        assert isinstance(adapter, RemoteAdapter)
        try:
            _ = adapter.n_classes
        except ModelLoadError:
            if adapter.label_only:
                adapter.set_n_classes(max(dfile.max_label + 1, len(dfile.class_names), 2))
            else:
                raise
    input_range = resolve_data_range(adapter, dfile.splits, len(dfile.sample_shape) >= 2)
    info = model_info(adapter)
    fingerprints = {"data": dfile.sha256}
    if info.sha256:
        fingerprints["model"] = info.sha256
    elif endpoint is not None:
        fingerprints["endpoint"] = hashlib.sha256(endpoint.encode()).hexdigest()
    meta = TargetMetadata(
        data_kind=dfile.data_kind,
        class_names=dfile.class_names or [str(c) for c in range(adapter.n_classes)],
        feature_names=dfile.feature_names,
        description=f"{info.format} model {model or endpoint} assessed on {Path(data).name}",
        extra={"seed": seed, "model_info": info.extra, "data_format": dfile.format,
               "input_range": input_range.to_dict()},
    )
    name = Path(model).name if model is not None else str(endpoint)
    target = Target(
        name=name, model=adapter, data=dfile.splits, metadata=meta, fingerprints=fingerprints,
        model_format=info.format or "unknown", model_path=None if model is None else str(model),
        data_path=str(data),
    )
    _validate(target)
    return target
