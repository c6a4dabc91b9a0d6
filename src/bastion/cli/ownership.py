"""Proof of ownership: ``bastion model fingerprint create|verify``, ``bastion harden watermark``,
``bastion model watermark verify``.

Exit codes of the verify commands: 0 the suspect is identified as derived / the watermark is present ·
1 not identified · 2 error (bad input, wrong key, unreachable endpoint).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import CONTEXT, harden_app, model_app
from bastion.cli.output import (
    EXIT_FINDINGS,
    OutputFormat,
    ThreadsOpt,
    console,
    fmt_value,
    print_fields,
    print_json,
    use_threads,
)

fingerprint_app = typer.Typer(name="fingerprint", help="Model fingerprints (conferrable adversarial examples): "
                              "create, verify.", no_args_is_help=True, pretty_exceptions_enable=False,
                              context_settings=CONTEXT)
watermark_app = typer.Typer(name="watermark", help="Training-time watermarks: verify (embed with bastion harden "
                            "watermark).", no_args_is_help=True, pretty_exceptions_enable=False,
                            context_settings=CONTEXT)
model_app.add_typer(fingerprint_app)
model_app.add_typer(watermark_app)

ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="Suspect model file.")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="Suspect predict URL (a Bastion gateway's "
                                                                   "/v1/models/NAME/predict).")]
BudgetOpt = Annotated[int | None, typer.Option("--query-budget", min=1, help="At most this many queries.")]
ApiKeyOpt = Annotated[str | None, typer.Option("--api-key", envvar="BASTION_API_KEY",
                                               help="Bearer key for --endpoint (default $BASTION_API_KEY).")]


def _suspect(model: Path | None, endpoint: str | None, budget: int | None, api_key: str | None,
             shape: tuple[int, ...], n_classes: int) -> Any:
    from bastion.core.errors import ConfigError
    from bastion.core.model import InputSpec
    from bastion.models.loaders import load_model

    if (model is None) == (endpoint is None):
        raise ConfigError("give exactly one of --model FILE or --endpoint URL")
    if endpoint is not None:
        return load_model(None, endpoint=endpoint, query_budget=budget, input_spec=InputSpec(tuple(shape)),
                          n_classes=n_classes, api_key=api_key)
    return load_model(model)


BundleOpt = Annotated[Path | None, typer.Option("--bundle", help="With a match on --endpoint: also write the "
                                                                 "incident's signed forensic bundle here.")]
SigningKeyOpt = Annotated[Path | None, typer.Option("--signing-key", help="Private key that signs --bundle "
                                                                          "(bastion keys generate).")]


def _incident(out: dict[str, Any], endpoint: str | None, matched: bool, wanted: bool, method: str,
              verdict: dict[str, Any], bundle: Path | None, signing_key: Path | None, **extra: Any) -> None:
    """Open the ownership incident for a matching endpoint (and write its bundle); note it in ``out``."""
    from bastion.core.errors import ConfigError

    if (bundle is None) != (signing_key is None):
        raise ConfigError("--bundle and --signing-key go together")
    if endpoint is None or not matched or not wanted:
        return
    from bastion.respond.ownership import open_ownership_incident

    inc, created = open_ownership_incident(endpoint, method, verdict, bundle=bundle, signing_key=signing_key,
                                           **extra)
    out["incident"] = {"id": inc["id"], "created": created, "bundle": None if bundle is None else str(bundle)}


@fingerprint_app.command("create")
def fingerprint_create(
    model: Annotated[Path, typer.Argument(help="The owner's model file.")],
    data: Annotated[str, typer.Option("--data", "-d", help="The owner's labelled data (.npz, CSV, demo:NAME).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Fingerprint file to write (JSON).")],
    n: Annotated[int, typer.Option("--n", min=10, help="Fingerprint size (= queries of a full verification).")] = 100,
    surrogates: Annotated[int, typer.Option("--surrogates", min=1)] = 3,
    references: Annotated[int, typer.Option("--references", min=1)] = 3,
    null_models: Annotated[int, typer.Option("--null-models", min=2, help="Independent models measured for "
                                                                          "the null.")] = 6,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 30,
    eps: Annotated[float, typer.Option("--eps", min=0.0, help="L∞ bound, as a fraction of the input range.")] = 0.25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Build a fingerprint of MODEL: conferrable adversarial examples (Lukas et al., ICLR 2021) that copies
    derived from it label like it and independently trained models do not; stores the measured null."""
    use_threads(threads)
    from bastion.defenses.ownership import FingerprintConfig, create_fingerprint
    from bastion.defenses.specs import load_training_data
    from bastion.models.loaders import load_model

    source = load_model(model)
    td = load_training_data(data)
    cfg = FingerprintConfig(n_fingerprints=n, n_candidates=max(4 * n, 200), n_surrogates=surrogates,
                            n_references=references, n_null=null_models, epochs=epochs, eps=eps, seed=seed)
    with console.status("fingerprinting") as st:
        fp = create_fingerprint(source, td.x_train, td.y_train, x_seed=td.x_test, config=cfg,
                                progress=lambda msg: st.update(f"fingerprinting: {msg}"))
    fp.save(out)
    d = fp.to_dict()
    summary = {"fingerprint": str(out), "digest": fp.digest, "n": len(fp.y), "method": d["method"],
               "null_match_rates": fp.null_match_rates, "surrogate_match_rates": fp.surrogate_match_rates,
               "reference_match_rates": fp.reference_match_rates, "duration_s": round(fp.duration_s, 1)}
    if fmt == OutputFormat.json:
        print_json(summary)
        return
    print_fields({"fingerprint": summary["fingerprint"], "inputs": f"{len(fp.y)} conferrable adversarial examples",
                  "derived copies (surrogates) match": ", ".join(fmt_value(v) for v in fp.surrogate_match_rates),
                  "independent (references) match": ", ".join(fmt_value(v) for v in fp.reference_match_rates),
                  "independent (null, unseen) match": ", ".join(fmt_value(v) for v in fp.null_match_rates),
                  "digest": fp.digest})


@fingerprint_app.command("verify")
def fingerprint_verify(
    fingerprint: Annotated[Path, typer.Argument(help="Fingerprint file from bastion model fingerprint create.")],
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    query_budget: BudgetOpt = None,
    api_key: ApiKeyOpt = None,
    alpha: Annotated[float | None, typer.Option("--alpha", help="Significance level (default: the file's, "
                                                                "0.01).")] = None,
    incident: Annotated[bool, typer.Option("--incident/--no-incident", help="Open an incident when an endpoint "
                                                                            "matches (default on).")] = True,
    bundle: BundleOpt = None,
    signing_key: SigningKeyOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
) -> None:
    """Is the suspect derived from the fingerprinted model? Match rate and p-value against the null."""
    from bastion.defenses.ownership import Fingerprint, verify_fingerprint

    fp = Fingerprint.load(fingerprint)
    suspect = _suspect(model, endpoint, query_budget, api_key, fp.input_shape, fp.n_classes)
    verdict = verify_fingerprint(fp, suspect, query_budget=query_budget, alpha=alpha)
    out: dict[str, Any] = {"suspect": endpoint or str(model), **verdict.to_dict()}
    _incident(out, endpoint, verdict.derived, incident, "fingerprint", verdict.to_dict(), bundle, signing_key,
              fingerprint_file=str(fingerprint), source_sha256=fp.source_sha256)
    if fmt == OutputFormat.json:
        print_json(out)
    else:
        print_fields({"suspect": out["suspect"],
                      "verdict": "DERIVED from the fingerprinted model" if verdict.derived else "not identified",
                      "match rate": f"{verdict.matches}/{verdict.queries} = {fmt_value(verdict.match_rate)}",
                      "p-value": f"{verdict.p_value:.3g} (alpha {verdict.alpha})",
                      "null (independent models)": f"mean {fmt_value(verdict.null_mean)}, max "
                                                   f"{fmt_value(verdict.null_max)} of {verdict.null_models}",
                      **({"incident": f"#{out['incident']['id']}"} if "incident" in out else {})})
    if not verdict.derived:
        raise typer.Exit(EXIT_FINDINGS)


@harden_app.command("watermark")
def harden_watermark(
    data: Annotated[str, typer.Option("--data", "-d", help="Training data (.npz, CSV, demo:NAME).")],
    model_spec: Annotated[str, typer.Option("--model-spec", help="softmax-regression, a zoo name (digits-mlp, "
                                                                 "mnist-cnn, …) or module:Class.")],
    out: Annotated[Path, typer.Option("--out", help="Watermarked model file (TorchScript, with its sidecar).")],
    key: Annotated[Path, typer.Option("--key", help="AES-256 key file (0600); created when missing.")],
    trigger_out: Annotated[Path | None, typer.Option("--trigger-out", help="Encrypted trigger set "
                                                                           "(default OUT.watermark).")] = None,
    n_trigger: Annotated[int, typer.Option("--n-trigger", min=10)] = 100,
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = 40,
    measure_cost: Annotated[bool, typer.Option("--measure-cost/--no-measure-cost",
                                               help="Also train without the watermark and report the accuracy "
                                                    "cost.")] = True,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Train with a backdoor watermark (Adi et al., USENIX Security 2018); the trigger set is stored encrypted."""
    use_threads(threads)
    from bastion.core.model import InputSpec
    from bastion.core.paths import sha256_file
    from bastion.data.privacy.encryption import generate_kek
    from bastion.defenses.ownership import WatermarkConfig, embed_watermark, save_trigger_set
    from bastion.defenses.sanitizers.export import save_model
    from bastion.defenses.specs import load_training_data

    td = load_training_data(data)
    if not key.exists():
        generate_kek(key)
    cfg = WatermarkConfig(n_trigger=n_trigger, epochs=epochs, seed=seed)
    with console.status("training with the watermark"):
        res, net, wm = embed_watermark(model_spec, td.x_train, td.y_train, td.n_classes, x_test=td.x_test,
                                       y_test=td.y_test, clip_min=td.clip_min, clip_max=td.clip_max, config=cfg,
                                       measure_cost=measure_cost)
    spec = InputSpec(tuple(td.input_shape), clip_min=td.clip_min, clip_max=td.clip_max, range_source=td.range_source)
    written = save_model(net, out, spec, td.n_classes, class_names=td.class_names or None, record=res.to_dict())
    trig = save_trigger_set(wm, trigger_out or Path(str(out) + ".watermark"), key, model_sha256=sha256_file(out))
    summary = {**res.to_dict(), "model": str(written["model"]), "trigger_set": str(trig), "key": str(key)}
    if fmt == OutputFormat.json:
        print_json(summary)
        return
    print_fields({"model": summary["model"], "trigger set (encrypted)": str(trig), "key": str(key),
                  "clean accuracy": fmt_value(res.clean_accuracy),
                  "without watermark": fmt_value(res.baseline_accuracy),
                  "accuracy cost": fmt_value(res.accuracy_cost),
                  "trigger accuracy": fmt_value(res.trigger_accuracy)})


@watermark_app.command("verify")
def watermark_verify(
    trigger: Annotated[Path, typer.Argument(help="Encrypted trigger set from bastion harden watermark.")],
    key: Annotated[Path, typer.Option("--key", help="The AES-256 key file it was encrypted with.")],
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    query_budget: BudgetOpt = None,
    api_key: ApiKeyOpt = None,
    alpha: Annotated[float, typer.Option("--alpha")] = 0.01,
    incident: Annotated[bool, typer.Option("--incident/--no-incident", help="Open an incident when an endpoint "
                                                                            "carries the watermark.")] = True,
    bundle: BundleOpt = None,
    signing_key: SigningKeyOpt = None,
    fmt: Annotated[OutputFormat, typer.Option("--format")] = OutputFormat.text,
) -> None:
    """Does the suspect carry the watermark? Trigger accuracy and a binomial test against chance."""
    from bastion.defenses.ownership import load_trigger_set, verify_watermark

    wm = load_trigger_set(trigger, key)
    suspect = _suspect(model, endpoint, query_budget, api_key, tuple(wm.x.shape[1:]), wm.n_classes)
    verdict = verify_watermark(wm, suspect, query_budget=query_budget, alpha=alpha)
    out: dict[str, Any] = {"suspect": endpoint or str(model), **verdict.to_dict()}
    _incident(out, endpoint, verdict.verified, incident, "watermark", verdict.to_dict(), bundle, signing_key)
    if fmt == OutputFormat.json:
        print_json(out)
    else:
        print_fields({"suspect": out["suspect"],
                      "verdict": "WATERMARK PRESENT" if verdict.verified else "not identified",
                      "trigger accuracy": f"{verdict.matches}/{verdict.queries} = "
                                          f"{fmt_value(verdict.trigger_accuracy)} (chance {fmt_value(verdict.chance)})",
                      "p-value": f"{verdict.p_value:.3g} (alpha {verdict.alpha})",
                      **({"incident": f"#{out['incident']['id']}"} if "incident" in out else {})})
    if not verdict.verified:
        raise typer.Exit(EXIT_FINDINGS)
