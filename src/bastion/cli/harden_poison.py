"""``bastion harden poison-filter``: drop the samples the poisoning detector flags, retrain, re-measure."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bastion.cli.groups import harden_app
from bastion.cli.output import OutputFormat, ThreadsOpt, fmt_value, print_fields, print_json, use_threads


@harden_app.command("poison-filter")
def poison_filter_cmd(
    data: Annotated[str, typer.Option("--data", "-d", help="Training data (.npz with x_train/y_train, x_test/y_test), "
                                                          "e.g. the output of bastion attack poison, or demo:NAME.")],
    model_spec: Annotated[str, typer.Option("--model-spec", help="Architecture to train: softmax-regression, a zoo "
                                                                 "name (digits-mlp, mnist-cnn, tabular-mlp) or "
                                                                 "module:Class.")],
    out: Annotated[Path, typer.Option("--out", help="Model file to write (TorchScript, with its sidecar).")],
    truth: Annotated[Path | None, typer.Option("--truth", help="Ground truth of the attack (OUT.truth.json of bastion "
                                                               "attack poison; default: DATA.truth.json when it "
                                                               "exists): ASR before/after, detector recall/precision.")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 30,
    unlearn: Annotated[int, typer.Option("--unlearn", min=0, help="Anti-backdoor learning instead of retraining: "
                                         "train on everything, then N epochs of gradient ascent on the flagged "
                                         "samples (and descent on the rest). 0 = retrain on the kept samples.")] = 0,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Train on the training set minus the samples the poisoning detector flags; with the attack's truth file,
    report clean accuracy and attack success rate before and after."""
    use_threads(threads)
    from bastion.core.errors import ConfigError
    from bastion.core.inputfile import parse_json, read_input_file
    from bastion.core.model import InputSpec
    from bastion.defenses.poison_filter import poison_filter
    from bastion.defenses.sanitizers.export import save_model
    from bastion.defenses.specs import load_training_data

    td = load_training_data(data)
    truth_path = truth if truth is not None else Path(str(data) + ".truth.json")
    record = None
    if truth is not None or truth_path.is_file():
        where = f"--truth {truth_path}"
        record = read_input_file(truth_path, "--truth", lambda data, _: parse_json(data, where, ConfigError),
                                 missing_error=ConfigError)
        if not isinstance(record, dict) or "method" not in record:
            raise ConfigError(f"--truth {truth_path}: not a truth file of bastion attack poison (no 'method')")
    model, res = poison_filter(td.x_train, td.y_train, model_spec, td.n_classes, x_test=td.x_test, y_test=td.y_test,
                               truth=record, epochs=epochs, seed=seed, mode="unlearn" if unlearn else "retrain",
                               unlearn_epochs=unlearn)
    spec = InputSpec(tuple(td.input_shape), clip_min=td.clip_min, clip_max=td.clip_max,
                     range_source=td.range_source)
    written = save_model(model, out, spec, td.n_classes, defense={"type": "poison-filter", **res.params,
                                                                  "removed": res.n_removed},
                         class_names=td.class_names or None, record=res.to_dict())
    summary = {k: v for k, v in res.to_dict().items() if k not in ("removed", "params")}
    summary["model"] = str(written["model"])
    if fmt == OutputFormat.json:
        print_json({**summary, "removed": res.removed, "params": res.params})
        return
    print_fields({"removed": f"{res.n_removed} of {res.n_samples} samples",
                  "detector recall / precision": "-" if res.recall is None else
                  f"{fmt_value(res.recall)} / {fmt_value(res.precision)}",
                  "clean accuracy before → after": f"{fmt_value(res.clean_accuracy_before)} → "
                                                   f"{fmt_value(res.clean_accuracy_after)}",
                  "attack success rate before → after": f"{fmt_value(res.asr_before)} → {fmt_value(res.asr_after)}",
                  "suspicious classes": res.suspicious_classes or "none", "model": summary["model"]})
