"""``bastion attack poison``: write a poisoned training set and its ground-truth indices."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import attack_app
from bastion.cli.output import OutputFormat, ThreadsOpt, print_json, stdout, use_threads


class PoisonMethod(str, Enum):
    badnets = "badnets"
    blended = "blended"
    sig = "sig"
    wanet = "wanet"
    label_consistent = "label-consistent"
    feature_trigger = "feature-trigger"
    clean_label = "clean-label"
    flip_random = "flip-random"
    flip_targeted = "flip-targeted"


@attack_app.command("poison")
def poison(
    data: Annotated[str, typer.Argument(help="Training data: .npz with x_train/y_train, or demo:NAME.")],
    out: Annotated[Path, typer.Option("--out", help="Poisoned .npz to write (plus OUT.truth.json).")],
    method: Annotated[PoisonMethod, typer.Option("--method", help="Poisoning attack.")] = PoisonMethod.badnets,
    rate: Annotated[float, typer.Option("--rate", help="Share of the training set to poison.")] = 0.1,
    target: Annotated[int, typer.Option("--target", help="Target class (backdoors, targeted flips).")] = 0,
    source: Annotated[int, typer.Option("--source", help="Source class for targeted flips.")] = 1,
    trigger_size: Annotated[int, typer.Option("--trigger-size", help="Patch side / number of features.")] = 3,
    trigger_value: Annotated[float | None, typer.Option("--trigger-value", help="Trigger value (default: the top of the input range: flags, else inferred from the data; tabular: the largest value seen).")] = None,
    clip_min: Annotated[float | None, typer.Option("--clip-min", help="Lowest valid input value (default: inferred from the data).")] = None,
    clip_max: Annotated[float | None, typer.Option("--clip-max", help="Highest valid input value (default: inferred from the data).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Poison a training set for red-team tests of detectors: BadNets patch, Blended (Chen et al. 2017), SIG
    (Barni et al. 2019, clean-label), WaNet warping (Nguyen & Tran 2021), label-consistent (Turner et al. 2019),
    a tabular feature-value trigger, a light clean-label patch, or label flips. The truth file records
    the poisoned indices and the trigger's parameters (harden poison-filter re-applies it to test inputs)."""
    use_threads(threads)
    import numpy as np

    from bastion.attacks.poisoning import (
        TriggerSpec,
        badnets,
        blended,
        clean_label,
        feature_trigger,
        label_consistent,
        random_flip,
        sig,
        targeted_flip,
        wanet,
    )
    from bastion.core.domain import resolve_range
    from bastion.core.errors import ConfigError
    from bastion.core.paths import atomic_write_bytes, atomic_write_text
    from bastion.data.arrays import load_labelled

    splits, _ = load_labelled(data)
    x, y = splits.x_train, splits.y_train
    assert x is not None and y is not None
    rng = resolve_range(flag=(clip_min, clip_max), data=x, image=x.ndim >= 3)
    value = trigger_value if trigger_value is not None else (
        rng.clip_max if rng.clip_max is not None else float(np.max(x)))
    if (rng.clip_min is not None and value < rng.clip_min) or (rng.clip_max is not None and value > rng.clip_max):
        raise ConfigError(f"--trigger-value {value:g} is outside the {rng.describe()}")
    trig = TriggerSpec(size=trigger_size, value=value)
    lo, hi = rng.clip_min, rng.clip_max
    if method == PoisonMethod.badnets:
        p = badnets(x, y, target, rate, seed, trig)
    elif method == PoisonMethod.clean_label:
        p = clean_label(x, y, target, rate, seed, trig)
    elif method == PoisonMethod.blended:
        p = blended(x, y, target, rate, seed, clip_min=lo, clip_max=hi)
    elif method == PoisonMethod.sig:
        p = sig(x, y, target, rate, seed, clip_min=lo, clip_max=hi)
    elif method == PoisonMethod.wanet:
        p = wanet(x, y, target, rate, seed, clip_min=lo, clip_max=hi)
    elif method == PoisonMethod.label_consistent:
        p = label_consistent(x, y, target, rate, seed, size=trigger_size, clip_min=lo, clip_max=hi)
    elif method == PoisonMethod.feature_trigger:
        p = feature_trigger(x.reshape(len(x), -1) if x.ndim > 2 else x, y, target, rate, seed,
                            n_features=trigger_size)
        p.x = p.x.reshape(x.shape)
    elif method == PoisonMethod.flip_random:
        p = random_flip(x, y, rate, seed)
    else:
        p = targeted_flip(x, y, source, target, rate, seed)
    arrays = {"x_train": p.x, "y_train": p.y, "poison_indices": p.indices}
    if splits.x_test is not None and splits.y_test is not None:
        arrays.update(x_test=np.asarray(splits.x_test), y_test=np.asarray(splits.y_test))
    import io

    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(out, buf.getvalue(), mode=0o644)
    truth = {"data": data, "out": str(out), "method": p.method, "target": target if p.trigger is not None else None,
             "params": {**p.params, "input_range": rng.to_dict()},
             "n_samples": len(p.y), "n_poisoned": len(p.indices), "poison_indices": p.indices.tolist()}
    truth_path = out.with_name(out.name + ".truth.json")
    atomic_write_text(truth_path, json.dumps(truth, indent=1) + "\n")
    if fmt == OutputFormat.json:
        print_json({**truth, "truth": str(truth_path)})
    else:
        stdout.print(f"{p.method}: poisoned {len(p.indices)} of {len(p.y)} samples → {out} "
                     f"(ground truth in {truth_path})")
