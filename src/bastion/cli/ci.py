"""``bastion ci --policy bastion-policy.yaml``: one command for pipelines — scan, verify, assess, decide.

Exit codes: 0 every gate passed · 1 a gate failed · 2 the gate could not decide (bad policy,
unreadable input, a check error when the policy says ``errors: fail``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bastion.cli.groups import app
from bastion.cli.output import OutputFormat, ThreadsOpt, console, print_json, stdout, use_threads

_STYLE = {"pass": "green", "fail": "bold red", "error": "yellow", "skipped": "dim", "waived": "cyan"}


@app.command("ci")
def ci(
    policy: Annotated[Path, typer.Option("--policy", "-p", help="Gate policy (YAML): model, data, scan, signature, "
                                                                "assess thresholds, waivers.")] = Path(
        "bastion-policy.yaml"),
    out: Annotated[Path, typer.Option("--out", "-o", help="Where bastion.sarif, junit.xml, summary.md, gate.json "
                                                          "and assessment/ go.")] = Path("bastion-ci"),
    executor: Annotated[str, typer.Option("--executor", help="Where assessment checks run: local or ray.")] = "local",
    fmt: Annotated[OutputFormat, typer.Option("--format", help="text or json (gate.json on stdout).")] = (
        OutputFormat.text),
    store: Annotated[bool, typer.Option("--store/--no-store", help="Keep the assessment in the store (bastion "
                                                                   "history lists it, source ci).")] = True,
    threads: ThreadsOpt = None,
) -> None:
    """Gate a model in CI: scan the file, verify its signature, assess it, and apply the policy's thresholds."""
    use_threads(threads)
    from bastion.assess.gate import load_policy, run_gate
    from bastion.core.errors import ConfigError

    pol = load_policy(policy)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a directory")
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r}: local or ray")
    result = run_gate(pol, out, executor=executor, progress=fmt == OutputFormat.text and console.is_terminal)
    if store and result.assessment is not None:
        _store(result.assessment)
    if fmt == OutputFormat.json:
        print_json(result.to_dict())
    else:
        for g in result.gates:
            stdout.print(f"[{_STYLE[g.status]}]{g.status:>7}[/]  {g.name}: {g.detail}", highlight=False,
                         soft_wrap=True)
        for w in result.waived:
            stdout.print(f"[cyan]{'waived':>7}[/]  {w['id']} ({w['severity']}): {w['reason']}", highlight=False,
                         soft_wrap=True)
        stdout.print(f"gate: {result.verdict.upper()} — wrote {out}/bastion.sarif, junit.xml, summary.md, gate.json",
                     highlight=False, soft_wrap=True)
    raise typer.Exit(result.exit_code)


def _store(assessment: Any) -> None:
    """Keep the gate's assessment with the others (``bastion history``); a store that cannot be written is a
    warning: it does not change the gate's verdict."""
    try:
        from bastion.assess.history import record
        from bastion.govern.watch import catalog_version
        from bastion.store.db import upgrade

        upgrade()
        record(assessment, catalog_version=catalog_version(), source="ci")
    except Exception as exc:
        console.print(f"[yellow]warning:[/] the assessment was not stored ({type(exc).__name__}: {exc})")
