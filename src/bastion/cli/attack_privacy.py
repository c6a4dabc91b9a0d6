"""``bastion attack membership|attribute|inversion|extraction``: privacy and model-theft attacks.

Data convention (``.npz``): ``x_train``/``y_train`` are the model's training set (members),
``x_test``/``y_test`` held-out records (non-members), optional ``x_pop``/``y_pop`` attacker
population data. Every command prints its metrics and parameters (``--format json``) and, with
``--out DIR``, writes ``result.json`` and its plots there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import attack_app
from bastion.cli.output import OutputFormat, ThreadsOpt, console, dumps, print_json, print_table, use_threads

ModelOpt = Annotated[Path | None, typer.Option("--model", "-m", help="Model file (TorchScript, torch.export, ONNX, skops).")]
DataOpt = Annotated[Path | None, typer.Option("--data", "-d", help=".npz with x_train/y_train (members), x_test/y_test, optional x_pop/y_pop.")]
DemoOpt = Annotated[str | None, typer.Option("--demo", help="Built-in demo target instead of --model/--data.")]
EndpointOpt = Annotated[str | None, typer.Option("--endpoint", help="Remote predict URL (black-box) instead of --model.")]
BudgetOpt = Annotated[int | None, typer.Option("--query-budget", help="Most samples the endpoint may be sent.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random process.")]
OutOpt = Annotated[Path | None, typer.Option("--out", "-o", help="Directory for result.json and plots.")]
FmtOpt = Annotated[OutputFormat, typer.Option("--format", help="text or json.")]
ClipMinOpt = Annotated[float | None, typer.Option("--clip-min", help="Lowest valid input value.")]
ClipMaxOpt = Annotated[float | None, typer.Option("--clip-max", help="Highest valid input value.")]


def _target(model: Path | None, data: Path | None, demo: str | None, endpoint: str | None,
            query_budget: int | None, clip_min: float | None, clip_max: float | None, seed: int) -> Any:
    from bastion.assess.target import build_target

    return build_target(model=model, data=data, demo=demo, endpoint=endpoint, query_budget=query_budget,
                        clip_min=clip_min, clip_max=clip_max, seed=seed)


def _training_records(target: Any, need: str) -> tuple[Any, Any]:
    """The target's training records (the members an attack is scored on), or ``InvalidInputError(need)``."""
    from bastion.core.errors import InvalidInputError

    d = target.data
    if not d.has_train or d.x_train is None or d.y_train is None:
        raise InvalidInputError(need)
    return d.x_train, d.y_train


def _emit(result: dict[str, Any], fmt: OutputFormat, out: Path | None, artifacts: dict[str, bytes],
          headline: list[str]) -> None:
    from bastion.core.paths import atomic_write_bytes, atomic_write_text

    if out is not None:
        if out.exists() and not out.is_dir():
            from bastion.core.errors import ConfigError

            raise ConfigError(f"--out {out} exists and is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        for name, blob in artifacts.items():
            atomic_write_bytes(out / name, blob)
        result["artifacts"] = sorted(artifacts)
        atomic_write_text(out / "result.json", dumps(result))
    if fmt == OutputFormat.json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{result['attack']} · {result.get('target', '')}", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in headline:
        v = result.get(key)
        table.add_row(key, "null" if v is None else (f"{v:.4f}" if isinstance(v, float) else str(v)))
    print_table(table)
    if result.get("curve"):
        pts = ", ".join(f"{p['queries']}: {p['fidelity']:.3f}" for p in result["curve"])
        console.print(f"fidelity by queries: {pts}")
    for note in result.get("notes", []):
        console.print(f"[dim]note: {note}[/]")
    if out is not None:
        console.print(f"wrote {out / 'result.json'}" + (f" and {', '.join(sorted(artifacts))}" if artifacts else ""))


def _policy_wrap(model: Any, policy: str | None) -> Any:
    if not policy:
        return model
    from bastion.defenses.output_policy import PolicyWrappedModel

    cfg: dict[str, Any] = json.loads(policy) if policy.strip().startswith("{") else {"type": policy}
    return PolicyWrappedModel(model, cfg)


@attack_app.command("membership")
def membership(
    model: ModelOpt = None, data: DataOpt = None, demo: DemoOpt = None, endpoint: EndpointOpt = None,
    query_budget: BudgetOpt = None, clip_min: ClipMinOpt = None, clip_max: ClipMaxOpt = None,
    method: Annotated[str | None, typer.Option("--method", help="loss | confidence | label_only | lira | rmia (default: online LiRA when the model returns scores, label_only when it answers labels only).")] = None,
    time_budget: Annotated[float, typer.Option("--time-budget", help="Seconds for a reference-model attack (cloning, recipe fit, training, scoring); the number of reference models is what it affords (8 to 64).")] = 180.0,
    n_reference: Annotated[int | None, typer.Option("--n-reference", help="Reference models (lira, rmia); default: chosen from --time-budget.")] = None,
    reference_arch: Annotated[str, typer.Option("--reference-arch", help="clone (the target's own architecture, re-initialised; proxy MLP when it cannot be cloned), proxy, or a zoo architecture.")] = "clone",
    reference_epochs: Annotated[int | None, typer.Option("--reference-epochs", help="Fix the reference recipe at this many epochs (Adam, --reference-lr); default: fit the recipe to the target.")] = None,
    reference_lr: Annotated[float, typer.Option("--reference-lr", help="Learning rate of a fixed recipe (--reference-epochs).")] = 1e-3,
    reference_mode: Annotated[str, typer.Option("--reference-mode", help="online (reference models train on the candidates; strongest, needs no population) or offline (on x_pop).")] = "online",
    subset_fraction: Annotated[float, typer.Option("--subset-fraction", help="Offline: share of the population each reference model trains on.")] = 0.5,
    reference_set_size: Annotated[int | None, typer.Option("--reference-set-size", help="Online: records per reference model (default: the target's training-set size, at most half the candidates).")] = None,
    variance: Annotated[str, typer.Option("--variance", help="LiRA variance: shrunk | per_example | global.")] = "shrunk",
    lira_scorer: Annotated[str, typer.Option("--lira-scorer", help="LiRA: learned (decision function fitted on the reference models; online on the candidates, offline on the population) or gaussian (online likelihood ratio, offline z-score).")] = "learned",
    neighbours: Annotated[int, typer.Option("--neighbours", help="LiRA, learned scorer: calibrate each record against its k (and 3k) nearest same-label candidates and k nearest candidates under the same model; 0 = off.")] = 10,
    per_example_variance: Annotated[bool, typer.Option("--per-example-variance", help="LiRA: per-record variances (same as --variance per_example).")] = False,
    max_records: Annotated[int, typer.Option("--max-records", help="Most members and non-members to score each.")] = 2000,
    policy: Annotated[str | None, typer.Option("--policy", help="Attack through an output policy: a type or a JSON config.")] = None,
    seed: SeedOpt = 0, out: OutOpt = None, fmt: FmtOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Membership inference: AUC, TPR at 1% / 0.1% FPR, balanced accuracy, empirical ε bound."""
    use_threads(threads)
    from bastion.assess.checks.privacy import target_membership
    from bastion.attacks.inference.membership import MembershipConfig
    from bastion.attacks.inference.metrics import roc_plots_png
    from bastion.core.errors import ConfigError
    from bastion.defenses.dp import read_privacy_statement

    if not 0 < subset_fraction <= 1:
        raise ConfigError(f"--subset-fraction must lie in (0, 1], got {subset_fraction}")
    zoo_arch = reference_arch not in ("clone", "proxy")
    cfg = MembershipConfig(method=method or "lira", n_reference=n_reference, time_budget_s=time_budget,  # type: ignore[arg-type]
                           reference_arch="clone" if zoo_arch else reference_arch,  # type: ignore[arg-type]
                           reference_epochs=reference_epochs, reference_lr=reference_lr,
                           reference_mode=reference_mode, reference_subset_fraction=subset_fraction,  # type: ignore[arg-type]
                           reference_set_size=reference_set_size,
                           variance="per_example" if per_example_variance else variance,  # type: ignore[arg-type]
                           lira_scorer=lira_scorer, neighbours=neighbours, seed=seed)  # type: ignore[arg-type]
    target = _target(model, data, demo, endpoint, query_budget, clip_min, clip_max, seed)
    factory = None
    if zoo_arch:
        from bastion.models.zoo import build_architecture

        spec, k = target.model.input_spec, target.model.n_classes
        build_architecture(reference_arch, spec.shape, k)  # validates the name

        def factory() -> Any:
            return build_architecture(reference_arch, spec.shape, k)

    r = target_membership(target, cfg, auto_method=method is None, max_records=max_records, factory=factory,
                          victim=_policy_wrap(target.model, policy))
    if zoo_arch:
        r.params["reference_arch"] = reference_arch
    res = {"target": target.name, **r.to_dict()}
    res["params"].update(policy=policy or "none")
    stmt = read_privacy_statement(target.model_path)
    res["claimed_epsilon"] = None if stmt is None else stmt.epsilon
    headline = ["auc", "tpr_at_1pct_fpr", "tpr_at_0_1pct_fpr", "balanced_accuracy", "empirical_epsilon_lower_bound",
                "claimed_epsilon", "n_members", "n_nonmembers", "queries"]
    if r.reference is not None:
        p = r.params
        recipe = p.get("reference_recipe", {})
        recipe_txt = ", ".join(f"{k}={v}" for k, v in recipe.items()) if isinstance(recipe, dict) else str(recipe)
        res["reference_models"] = (f"{p.get('n_reference')} x {p.get('reference_arch')} ({p.get('n_reference_source')}"
                                   f", budget {p.get('time_budget_s')} s), recipe {recipe_txt}")
        headline.append("reference_models")
        if p.get("clone_unavailable"):
            res["notes"] = [*res.get("notes", []), f"proxy reference models: {p['clone_unavailable']}"]
    _emit(res, fmt, out, roc_plots_png(r.member_scores, r.nonmember_scores, f"membership ({r.method})"),
          ["method", *headline])


@attack_app.command("attribute")
def attribute(
    sensitive: Annotated[str, typer.Option("--sensitive", help="Sensitive column: index or feature name.")],
    model: ModelOpt = None, data: DataOpt = None, demo: DemoOpt = None, endpoint: EndpointOpt = None,
    query_budget: BudgetOpt = None, clip_min: ClipMinOpt = None, clip_max: ClipMaxOpt = None,
    bins: Annotated[int, typer.Option("--bins", help="Quantile bins of the sensitive value.")] = 2,
    seed: SeedOpt = 0, out: OutOpt = None, fmt: FmtOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Attribute inference on tabular data, scored against a baseline without model access."""
    use_threads(threads)
    from bastion.attacks.inference.attribute import run_attribute_inference
    from bastion.core.errors import ConfigError, InvalidInputError

    target = _target(model, data, demo, endpoint, query_budget, clip_min, clip_max, seed)
    x_train, y_train = _training_records(
        target, "attribute inference needs the training records (x_train/y_train) to attack")
    d = target.data
    x_aux, y_aux = (d.x_pop, d.y_pop) if d.x_pop is not None and d.y_pop is not None else (d.x_test, d.y_test)
    if x_aux is None or y_aux is None:
        raise InvalidInputError("attribute inference needs attacker data: x_pop/y_pop or x_test/y_test")
    names = target.metadata.feature_names
    if sensitive.lstrip("-").isdigit():
        col = int(sensitive)
    elif sensitive in names:
        col = names.index(sensitive)
    else:
        raise ConfigError(f"--sensitive {sensitive!r} is neither a column index nor a feature name")
    r = run_attribute_inference(target.model, x_train, y_train, x_aux, y_aux, col, bins, seed)
    res = {"target": target.name, **r.to_dict(), "sensitive_name": names[col] if col < len(names) else str(col)}
    _emit(res, fmt, out, {}, ["sensitive_name", "attack_accuracy", "baseline_accuracy", "advantage",
                              "model_only_accuracy", "queries"])


@attack_app.command("inversion")
def inversion(
    model: ModelOpt = None, data: DataOpt = None, demo: DemoOpt = None,
    clip_min: ClipMinOpt = None, clip_max: ClipMaxOpt = None,
    steps: Annotated[int, typer.Option("--steps", help="Gradient-ascent steps per class.")] = 200,
    seed: SeedOpt = 0, out: OutOpt = None, fmt: FmtOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Model inversion (white-box image models): class reconstructions scored against a no-model baseline."""
    use_threads(threads)
    from bastion.attacks.inference.inversion import run_inversion

    target = _target(model, data, demo, None, None, clip_min, clip_max, seed)
    x_train, y_train = _training_records(
        target, "model inversion is scored against the training data: x_train/y_train needed")
    d = target.data
    r = run_inversion(target.model, x_train, y_train, prior=d.x_pop if d.x_pop is not None else d.x_test, steps=steps, seed=seed)
    res = {"target": target.name, **r.to_dict()}
    _emit(res, fmt, out, {"inversion.png": r.grid_png()},
          ["inversion_accuracy", "baseline_accuracy", "mean_similarity", "baseline_similarity", "target_confidence"])


@attack_app.command("extraction")
def extraction(
    model: ModelOpt = None, data: DataOpt = None, demo: DemoOpt = None, endpoint: EndpointOpt = None,
    query_budget: BudgetOpt = None, clip_min: ClipMinOpt = None, clip_max: ClipMaxOpt = None,
    budget: Annotated[int, typer.Option("--budget", help="Attacker's query budget (samples).")] = 1000,
    method: Annotated[str, typer.Option("--method", help="knockoff | equation (softmax regression).")] = "knockoff",
    strategy: Annotated[str, typer.Option("--strategy", help="in_distribution | random | mixed.")] = "in_distribution",
    schedule: Annotated[str | None, typer.Option("--schedule", help="Comma-separated query counts for the curve.")] = None,
    surrogate_arch: Annotated[str | None, typer.Option("--surrogate-arch", help="Zoo architecture of the stolen model (default: proxy MLP).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Surrogate training epochs.")] = 30,
    policy: Annotated[str | None, typer.Option("--policy", help="Attack through an output policy: a type or a JSON config.")] = None,
    seed: SeedOpt = 0, out: OutOpt = None, fmt: FmtOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Model extraction: fidelity and accuracy of the stolen model versus number of queries."""
    use_threads(threads)
    from bastion.assess.checks.privacy import extraction_split
    from bastion.attacks.extraction import ExtractionConfig, extract_softmax_regression, run_extraction
    from bastion.core.errors import ConfigError

    target = _target(model, data, demo, endpoint, query_budget, clip_min, clip_max, seed)
    victim = _policy_wrap(target.model, policy)
    pool, eval_x, eval_y = extraction_split(target, seed)
    if method == "equation":
        er = extract_softmax_regression(victim, n_queries=min(budget, victim.input_spec.n_features + 2),
                                        eval_x=eval_x, seed=seed)
        res = {"target": target.name, **er.to_dict(), "policy": policy or "none"}
        _emit(res, fmt, out, {}, ["fidelity", "queries", "residual", "exact", "n_parameters"])
        return
    if method != "knockoff":
        raise ConfigError(f"unknown --method {method!r}; choose knockoff or equation")
    if strategy not in ("in_distribution", "random", "mixed"):
        raise ConfigError(f"unknown --strategy {strategy!r}; choose in_distribution, random or mixed")
    try:
        sched = tuple(int(s) for s in schedule.split(",")) if schedule else ExtractionConfig().schedule
    except ValueError as exc:
        raise ConfigError(f"--schedule must be comma-separated integers, got {schedule!r}") from exc
    factory = None
    if surrogate_arch:
        from bastion.models.zoo import build_architecture

        spec, k = target.model.input_spec, target.model.n_classes
        build_architecture(surrogate_arch, spec.shape, k)

        def factory() -> Any:
            return build_architecture(surrogate_arch, spec.shape, k)

    cfg = ExtractionConfig(strategy=strategy, schedule=sched, epochs=epochs, seed=seed)  # type: ignore[arg-type]
    r = run_extraction(victim, pool, budget, eval_x, eval_y, cfg, surrogate_factory=factory)
    res = {"target": target.name, **r.to_dict(), "policy": policy or "none"}
    if surrogate_arch:
        res["params"]["surrogate"] = surrogate_arch
    _emit(res, fmt, out, {"extraction_curve.png": r.curve_png(f"extraction of {target.name}")},
          ["fidelity", "accuracy", "victim_accuracy", "queries_used", "stopped_by_budget", "loss"])
