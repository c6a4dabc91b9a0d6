"""``bastion data``: integrity manifests, validation, anomalies, PII, encryption, poisoning.

Exit codes: 0 clean · 1 differences / violations / findings · 2 bad input · 3 nothing to do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import data_app
from bastion.cli.options import FormatOpt, SeedOpt, print_result
from bastion.cli.output import (
    EXIT_FINDINGS,
    OutputFormat,
    ThreadsOpt,
    TrustedKeyOpt,
    console,
    stdout,
    trusted_keys,
    use_threads,
)


def _split_cols(value: str | None) -> list[str]:
    return [c.strip() for c in value.split(",") if c.strip()] if value else []


# ----------------------------------------------------------------------------- integrity
@data_app.command("manifest")
def manifest(
    paths: Annotated[list[Path], typer.Argument(help="Files or directories to record.")],
    out: Annotated[Path, typer.Option("--out", help="Manifest JSON to write.")],
    key: Annotated[Path | None, typer.Option("--key", help="Private key PREFIX (bastion keys generate).")] = None,
    key_columns: Annotated[
        str | None, typer.Option("--key-columns", help="Comma-separated key columns of tabular files.")
    ] = None,
    no_rows: Annotated[bool, typer.Option("--no-rows", help="File digests only, no per-row digests.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Record sha256 of every file and per-row Merkle trees of CSV/Parquet/npz files; sign it."""
    from bastion.data.integrity import build_manifest, manifest_summary, write_manifest

    m = build_manifest(paths, key_columns=_split_cols(key_columns), rows=not no_rows)
    write_manifest(m, out, key=str(key) if key else None)
    info = {"manifest": str(out), **manifest_summary(m)}
    print_result(fmt, info, f"manifest {out}: {info['files']} files, {info['bytes']} bytes, {info['rows']} rows in "
                            f"{info['tables']} tables\nmerkle root {info['merkle_root']}\n"
                            + (f"signed by key {info['key_id']}" if info["signed"] else "UNSIGNED (pass --key to sign)"))


@data_app.command("verify")
def verify(
    paths: Annotated[list[Path], typer.Argument(help="The same files or directories as at manifest time.")],
    manifest_path: Annotated[Path, typer.Option("--manifest", help="Manifest JSON to check against.")],
    trusted_key: TrustedKeyOpt = None,
    pub: Annotated[Path | None, typer.Option("--pub", hidden=True, help="Deprecated: --trusted-key.")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Report added/removed/modified files and exactly which rows were inserted, deleted or modified."""
    from bastion.data.integrity import manifest_signer, verify_manifest

    keys = trusted_keys(trusted_key, pub, "--pub")
    report = verify_manifest(paths, manifest_path, pub=manifest_signer(manifest_path, keys))
    print_result(fmt, report, lambda: _print_verify(report))
    if not report["ok"]:
        raise typer.Exit(EXIT_FINDINGS)


def _keys(row: dict[str, Any]) -> str:
    key = row.get("key")
    return "  " + ", ".join(f"{k}={v}" for k, v in key.items()) if key else ""


def _print_verify(r: dict[str, Any]) -> None:
    sig = r["signature"]
    stdout.print(f"signature: {sig['status']}" + (f" (key id {sig['key_id'][:16]}…)" if sig.get("key_id") else ""))
    for p in r["added"]:
        stdout.print(f"[green]+ added[/]    {p}")
    for p in r["removed"]:
        stdout.print(f"[red]- removed[/]  {p}")
    for c in r["modified"]:
        stdout.print(f"[yellow]~ modified[/] {c['path']}")
        for t in c.get("tables", []):
            label = f" [{t['name']}]" if t["name"] else ""
            for row in t.get("inserted", []):
                stdout.print(f"    + inserted row {row['row']}{label}{_keys(row)}", highlight=False)
            for row in t.get("deleted", []):
                stdout.print(f"    - deleted  row {row['old_row']}{label}{_keys(row)}", highlight=False)
            for row in t.get("modified", []):
                stdout.print(f"    ~ modified row {row['row']} (was row {row['old_row']}){label}{_keys(row)}", highlight=False)
    stdout.print("[bold green]OK[/]: data matches the manifest" if r["ok"] else "[bold red]DIFFERENCES FOUND[/]")


# ----------------------------------------------------------------------------- encryption
@data_app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Key file to write (mode 0600).")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing key file.")] = False,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Create a 256-bit key-encryption key (KEK) for data encryption."""
    from bastion.data.privacy.encryption import generate_kek

    path, kid = generate_kek(out, overwrite=force)
    print_result(fmt, {"key": str(path), "kek_id": kid}, f"key-encryption key {path} (mode 0600), key id {kid}")


@data_app.command("encrypt")
def encrypt(
    path: Annotated[Path, typer.Argument(help="File to encrypt.")],
    key: Annotated[Path | None, typer.Option("--key", help="KEK file (default: $BASTION_DATA_KEK).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output file (default PATH.enc).")] = None,
    chunk_size: Annotated[int, typer.Option("--chunk-size", help="Plaintext bytes per chunk.")] = 1 << 20,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """AES-256-GCM envelope encryption, streamed in authenticated chunks (PATH a file, or a registered data set
    NAME: encrypted once, the key wrapped for every current reader)."""
    from bastion.cli.data_access import encrypt_dataset_cmd, is_dataset_name

    if is_dataset_name(path):
        return encrypt_dataset_cmd(str(path), out, chunk_size, fmt)
    from bastion.data.privacy.encryption import encrypt_file, load_kek

    info = encrypt_file(path, out or path.with_name(path.name + ".enc"), load_kek(key), chunk_size=chunk_size)
    print_result(fmt, info, f"encrypted {path} → {info['path']} ({info['bytes']} bytes, {info['chunks']} chunks, "
                            f"key id {info['kek_id']})")


@data_app.command("decrypt")
def decrypt(
    path: Annotated[Path, typer.Argument(help="Encrypted file.")],
    key: Annotated[Path | None, typer.Option("--key", help="KEK file (default: $BASTION_DATA_KEK).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output (default: PATH without .enc).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Decrypt and authenticate; a modified file fails with exit 2 and writes nothing (PATH a file, or a data set
    NAME with --key MY_PRIVATE: current grantees only, audited)."""
    from bastion.cli.data_access import decrypt_dataset_cmd, is_dataset_name

    if is_dataset_name(path):
        return decrypt_dataset_cmd(str(path), key, out, fmt)
    from bastion.core.errors import ConfigError
    from bastion.data.privacy.encryption import decrypt_file, load_kek

    if out is None:
        if path.suffix != ".enc":
            raise ConfigError(f"{path} does not end in .enc; pass --out")
        out = path.with_suffix("")
    info = decrypt_file(path, out, load_kek(key))
    print_result(fmt, info, f"decrypted and authenticated {path} → {info['path']} ({info['bytes']} bytes)")


@data_app.command("rekey")
def rekey(
    path: Annotated[Path, typer.Argument(help="Encrypted file.")],
    key: Annotated[Path, typer.Option("--key", help="Current KEK file.")],
    new_key: Annotated[Path, typer.Option("--new-key", help="New KEK file.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Rotate the KEK: re-wrap the file's data key; the ciphertext chunks are unchanged."""
    from bastion.data.privacy.encryption import rekey_file

    info = rekey_file(path, key, new_key)
    print_result(fmt, info, f"re-wrapped {path}: key id {info['old_kek_id']} → {info['kek_id']}")


# ----------------------------------------------------------------------------- validation
@data_app.command("profile")
def profile(
    reference: Annotated[Path, typer.Argument(help="Reference table (CSV/TSV/Parquet).")],
    out: Annotated[Path, typer.Option("--out", help="schema.json to write.")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Infer a schema: types, ranges, categories, nullability, uniqueness."""
    import json

    from bastion.core.paths import atomic_write_text
    from bastion.data.tables import read_table
    from bastion.data.validation import infer_schema

    schema = infer_schema(read_table(reference))
    schema["reference"] = str(reference)
    atomic_write_text(out, json.dumps(schema, indent=1) + "\n")
    print_result(fmt, {"schema": str(out), **schema}, lambda: _print_schema(schema, reference, out))


def _print_schema(schema: dict[str, Any], reference: Path, out: Path) -> None:
    stdout.print(f"schema of {reference} ({schema['n_rows']} rows, {len(schema['columns'])} columns) → {out}")
    for name, c in schema["columns"].items():
        extra = (f" [{c['min']}, {c['max']}]" if "min" in c else "") + (
            f" one of {c['categories'][:6]}{'…' if len(c['categories']) > 6 else ''}" if "categories" in c else "")
        flags = ("nullable " if c["nullable"] else "") + ("unique" if c["unique"] else "")
        stdout.print(f"  {name}: {c['kind']}{extra} {flags}", highlight=False)


@data_app.command("validate")
def validate_cmd(
    data: Annotated[Path, typer.Argument(help="Table to check.")],
    schema: Annotated[Path, typer.Option("--schema", help="schema.json from bastion data profile.")],
    limit: Annotated[int, typer.Option("--limit", help="Violations shown in text mode.")] = 50,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """List every schema violation with its row and column. Exit 1 on violations."""
    import json

    from bastion.core.errors import InvalidInputError
    from bastion.data.tables import read_table
    from bastion.data.validation import validate

    try:
        spec = json.loads(schema.read_text("utf-8"))
    except FileNotFoundError:
        raise InvalidInputError(f"schema {schema} not found") from None
    except json.JSONDecodeError as exc:
        raise InvalidInputError(f"schema {schema} is not JSON: {exc}") from None
    report = validate(read_table(data), spec)
    report["data"] = str(data)
    print_result(fmt, report, lambda: _print_violations(report, data, schema, limit))
    if not report["ok"]:
        raise typer.Exit(EXIT_FINDINGS)


def _print_violations(report: dict[str, Any], data: Path, schema: Path, limit: int) -> None:
    if report["ok"]:
        stdout.print(f"{data}: valid against {schema}")
        return
    stdout.print(f"{data}: {report['n_violations']} violations in {report['rows_with_violations']} rows")
    for v in report["violations"][:limit]:
        stdout.print(f"  row {v['row']}  column {v['column']}  {v['check']}  value {v['value']!r}", highlight=False)


@data_app.command("anomalies")
def anomalies(
    data: Annotated[Path, typer.Argument(help="Table to score.")],
    reference: Annotated[Path | None, typer.Option("--reference", help="Reference table (default: DATA).")] = None,
    top: Annotated[int, typer.Option("--top", help="Top outliers to list.")] = 20,
    seed: SeedOpt = 0,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Score rows with IsolationForest; list the top outliers and which features are extreme."""
    from bastion.data.tables import read_table
    from bastion.data.validation import score_anomalies

    df = read_table(data)
    report = score_anomalies(df, read_table(reference) if reference else None, top=top, seed=seed)
    report["data"] = str(data)
    print_result(fmt, report, lambda: _print_anomalies(report, data))


def _print_anomalies(report: dict[str, Any], data: Path) -> None:
    stdout.print(f"{data}: {report['n_outliers']} of {report['n_rows']} rows look anomalous; top {len(report['top'])}:")
    for r in report["top"]:
        why = "; ".join(f"{x['feature']}={x['value']} {x['why']}" for x in r["reasons"]) or "unusual combination"
        stdout.print(f"  row {r['row']:<6d} score {r['score']:.3f}  {why}", highlight=False)


# ----------------------------------------------------------------------------- privacy
@data_app.command("pii")
def pii(
    data: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet table.")],
    columns: Annotated[str | None, typer.Option("--columns", help="Comma-separated columns (default all).")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Rows scanned per column (random sample).")] = 500,
    min_score: Annotated[float, typer.Option("--min-score", help="Minimum Presidio confidence.")] = 0.4,
    seed: SeedOpt = 0,
    suggest_policy: Annotated[Path | None, typer.Option(
        "--suggest-policy", help="Write an anonymisation policy YAML for the PII columns (for data anonymize).")] = None,
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Find PII columns (a clear share of values must match) and sporadic matches. Exit 1 when a PII column is found.

    Structured columns: share >= 0.5 of non-empty values (cards/IBANs: >= 0.25, >= 3 rows); free text: >= 1 row
    (cards, IBANs, SSNs, e-mails) or >= 2 rows (others). Sporadic matches never fail the run.
    """
    from bastion.data.privacy.pii import PiiScanner, scan_dataframe
    from bastion.data.tables import read_table

    df = read_table(data, text=True)
    report = scan_dataframe(df, _split_cols(columns) or None, sample=sample, seed=seed,
                            scanner=PiiScanner(min_score=min_score))
    report["data"] = str(data)
    if suggest_policy is not None and report["pii_columns"]:
        from bastion.core.paths import atomic_write_text
        from bastion.data.privacy.anonymize import policy_yaml

        atomic_write_text(suggest_policy, policy_yaml(report["anonymize_suggestions"], source=str(data)))
        report["suggested_policy"] = str(suggest_policy)
    print_result(fmt, report, lambda: _print_pii(report, suggest_policy))
    if report["pii_columns"]:
        raise typer.Exit(EXIT_FINDINGS)


def _pii_hits(c: dict[str, Any], key: str) -> str:
    n = c["rows_scanned"]
    if c["kind"] == "free_text":
        return ", ".join(f"{e} in {v['rows']} of {n} rows (needs {v['min_rows']})" for e, v in c[key].items())
    return ", ".join(f"{e} {v['rows']}/{n} = {v['share']:.{0 if v['share'] >= 0.1 else 1}%} (needs {v['threshold']:.0%}"
                     + (", checksum" if "checksum" in v["rule"] else ", mixed" if "mixed" in v["rule"] else "") + ")"
                     for e, v in c[key].items())


def _rule_text(rule: dict[str, Any]) -> str:
    extra = ", ".join(rule["entities"]) if "entities" in rule else " ".join(
        f"{k}={v}" for k, v in rule.items() if k != "action")
    return f"{rule['action']} {extra}".strip()


def _print_pii(report: dict[str, Any], suggest_policy: Path | None) -> None:
    def say(text: str) -> None:
        stdout.print(text, highlight=False, soft_wrap=True)

    say(f"{report['data']}: scanned {report['rows_scanned']} of {report['rows_total']} rows")
    rules = report["anonymize_suggestions"]["columns"]
    if report["pii_columns"]:
        say("PII columns (matching / non-empty values) → suggested anonymize action:")
    for c in report["columns"]:
        if c["contains_pii"]:
            kind = " (free text)" if c["kind"] == "free_text" else ""
            say(f"  {c['column']}{kind}: {_pii_hits(c, 'entities')} → {_rule_text(rules[c['column']])}")
    sporadic = [c for c in report["columns"] if c["sporadic"]]
    if sporadic:
        say("sporadic, low confidence (not PII columns: no anonymize suggestion, no exit 1):")
        for c in sporadic:
            say(f"  {c['column']}: {_pii_hits(c, 'sporadic')}")
    explained = [(c["column"], max(c["ignored"].items(), key=lambda kv: kv[1]))
                 for c in report["columns"] if c["ignored"] and not c["contains_pii"] and not c["sporadic"]]
    if explained:
        say("matches set aside (top reason per column; all in --format json):")
        for col, (reason, k) in explained:
            say(f"  {col}: {reason} ×{k}")
    if not report["pii_columns"]:
        say("no PII columns found")
    elif suggest_policy is not None:
        say(f"suggested policy → {suggest_policy}: review it, then bastion data anonymize {report['data']} "
            f"--policy {suggest_policy} --out OUT")


@data_app.command("anonymize")
def anonymize_cmd(
    data: Annotated[Path, typer.Argument(help="CSV/TSV/Parquet table.")],
    policy: Annotated[Path, typer.Option("--policy", help="Anonymisation policy YAML.")],
    out: Annotated[Path, typer.Option("--out", help="Anonymised table to write (.csv/.parquet, mode 0600).")],
    fmt: FormatOpt = OutputFormat.text,
) -> None:
    """Drop, mask, redact, pseudonymise (HMAC), generalise; enforce k-anonymity / l-diversity."""
    from bastion.data.privacy.anonymize import AnonymizationPolicy, anonymize
    from bastion.data.tables import read_table, write_table

    pol = AnonymizationPolicy.load(policy)
    result = anonymize(read_table(data, text=True), pol, base=policy.parent)  # cells as written: +44…, 0770…
    write_table(result.data, out)
    report = {"data": str(data), "out": str(out), **result.report}
    print_result(fmt, report, lambda: _print_anonymized(report, out))


def _print_anonymized(report: dict[str, Any], out: Path) -> None:
    stdout.print(f"wrote {out}: {report['rows']} rows, {report['columns_out']} columns; actions {report['actions']}",
                 highlight=False)
    if "k_anonymity" in report:
        k = report["k_anonymity"]
        stdout.print(f"k-anonymity: requested k={k['k_requested']}, achieved k={k['k_achieved']} over "
                     f"{k['equivalence_classes']} classes; information loss (NCP) {k['information_loss_ncp']}"
                     + (f"; l-diversity l={k['l_achieved']} on {k['sensitive']}" if "l_achieved" in k else ""))


# ----------------------------------------------------------------------------- poisoning
@data_app.command("poison")
def poison(
    data: Annotated[str, typer.Argument(help=".npz with x_train/y_train (the set to inspect), or demo:NAME.")],
    model: Annotated[
        Path | None, typer.Option("--model", help="Model trained on this data (default: train one here).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Directory for scores.npz and trigger_saliency.png.")] = None,
    seed: SeedOpt = 0,
    label_margin: Annotated[float, typer.Option("--label-margin", help="Confident-learning margin.")] = 0.5,
    strip_overlays: Annotated[int, typer.Option("--strip-overlays", help="STRIP overlays per sample.")] = 8,
    top: Annotated[int, typer.Option("--top", help="Flagged samples listed in text mode.")] = 20,
    fmt: FormatOpt = OutputFormat.text,
    threads: ThreadsOpt = None,
) -> None:
    """Find poisoned samples: confident learning, activation clustering, STRIP, spectral signatures, SPECTRE,
    per-class activation outliers and training-loss dynamics, combined into one ranked list.

    Exit 1 when samples are flagged, 0 when none are.
    """
    use_threads(threads)
    import numpy as np

    from bastion.core.paths import atomic_write_bytes
    from bastion.data.arrays import load_labelled
    from bastion.data.poisoning import PoisonConfig, detect_poisoning, trigger_saliency_png

    splits, extra = load_labelled(data)
    x, y = splits.x_train, splits.y_train
    assert x is not None and y is not None
    adapter = None
    if model is not None:
        from bastion.core.model import InputSpec
        from bastion.models.loaders import load_model

        adapter = load_model(model, input_spec=InputSpec(shape=tuple(x.shape[1:])))
    cfg = PoisonConfig(seed=seed, label_margin=label_margin, strip_overlays=strip_overlays)
    console.print(f"inspecting {len(y)} samples" + ("" if model else " (training a reference model first)"))
    rep = detect_poisoning(x, y, model=adapter, config=cfg)
    result = rep.to_dict(include_all_scores=True)
    result["data"] = data
    if "poison_indices" in extra:  # ground truth present (from bastion attack poison): score ourselves
        truth = set(int(i) for i in extra["poison_indices"])
        hit = len(truth & set(rep.flagged_indices))
        result["ground_truth"] = {"n_poisoned": len(truth), "precision": round(hit / max(len(rep.flagged_indices), 1), 4),
                                  "recall": round(hit / max(len(truth), 1), 4)}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        import io

        buf = io.BytesIO()
        np.savez_compressed(buf, scores=rep.scores, flagged_indices=np.asarray(rep.flagged_indices, dtype=np.int64),
                            **{f"score_{k}": v for k, v in rep.method_scores.items()})  # type: ignore[arg-type]
        atomic_write_bytes(out / "scores.npz", buf.getvalue(), mode=0o644)
        result["artifacts"] = {"scores": str(out / "scores.npz")}
        module = rep.model if rep.model is not None else getattr(adapter, "module", None)
        backdoor = [i["index"] for i in rep.flagged() if any(m != "confident_learning" for m in i["methods"])]
        if module is not None and x.ndim >= 3 and (backdoor or rep.flagged_indices):
            png = trigger_saliency_png(module, x, y, backdoor or [f["index"] for f in rep.flagged()])
            atomic_write_bytes(out / "trigger_saliency.png", png, mode=0o644)
            result["artifacts"]["trigger_saliency"] = str(out / "trigger_saliency.png")
    print_result(fmt, result, lambda: _print_poison(result, y, top))
    if rep.flagged_indices:
        raise typer.Exit(EXIT_FINDINGS)


def _print_poison(result: dict[str, Any], y: Any, top: int) -> None:
    stdout.print(f"{result['n_flagged']} of {result['n_samples']} samples flagged; "
                 f"suspicious classes (backdoor): {result['suspicious_classes'] or 'none'}")
    ranked = sorted(result.get("class_suspicion", []), key=lambda c: c["p_value"])[:3]
    if ranked:
        stdout.print("class suspicion (p-value): " + ", ".join(f"{c['class']} ({c['p_value']:.2g})" for c in ranked))
    for f in result["flagged"][:top]:
        stdout.print(f"  #{f['index']:<6d} score {f['score']:.3f}  label {int(y[f['index']])}  {', '.join(f['methods'])}")
    if "ground_truth" in result:
        g = result["ground_truth"]
        stdout.print(f"ground truth: precision {g['precision']}, recall {g['recall']} of {g['n_poisoned']}")
    for name, path in result.get("artifacts", {}).items():
        stdout.print(f"{name}: {path}")
