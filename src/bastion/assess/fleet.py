"""Assess a fleet of models from one manifest, locally or as parallel Ray tasks.

```yaml
defaults: {profile: quick, seed: 0}
models:
  - {name: digits, demo: digits}
  - {name: churn, model: models/churn.onnx, data: data/churn.csv, label: churned, profile: standard}
```
Each entry becomes one assessment written to ``OUT/<name>/``; with Ray every assessment is one
task, built from paths on the worker (a shared filesystem or the same machine).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bastion.core.errors import ConfigError

_KEYS = {"name", "demo", "model", "data", "label", "endpoint", "query_budget", "clip_min", "clip_max", "profile",
         "seed", "only", "fail_on"}


def load_manifest(path: str | Path) -> list[dict[str, Any]]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"manifest {p} not found")
    raw = yaml.safe_load(p.read_text()) or {}
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), list) or not raw["models"]:
        raise ConfigError(f"{p}: expected a mapping with a non-empty 'models' list")
    defaults = dict(raw.get("defaults") or {})
    entries, names = [], set()
    for i, m in enumerate(raw["models"]):
        if not isinstance(m, dict) or "name" not in m:
            raise ConfigError(f"{p}: models[{i}] needs a 'name'")
        unknown = set(m) - _KEYS
        if unknown:
            raise ConfigError(f"{p}: models[{i}] has unknown keys {sorted(unknown)}")
        if m["name"] in names:
            raise ConfigError(f"{p}: model name {m['name']!r} appears twice")
        names.add(m["name"])
        base = p.parent
        entry = {**defaults, **m}
        for key in ("model", "data"):
            if entry.get(key):
                entry[key] = str((base / entry[key]).resolve()) if not Path(entry[key]).is_absolute() else entry[key]
        entries.append(entry)
    return entries


def assess_one(entry: dict[str, Any], out_root: str) -> dict[str, Any]:
    """Build the target, run the assessment (local executor), write the reports; returns a summary row."""
    from bastion.assess.runner import run_assessment
    from bastion.assess.target import build_target
    from bastion.core.errors import BastionError
    from bastion.report import write_reports

    out = Path(out_root) / str(entry["name"])
    try:
        target = build_target(model=entry.get("model"), data=entry.get("data"), demo=entry.get("demo"),
                              endpoint=entry.get("endpoint"), query_budget=entry.get("query_budget"),
                              label=entry.get("label"), clip_min=entry.get("clip_min"), clip_max=entry.get("clip_max"),
                              seed=int(entry.get("seed", 0)))
        a = run_assessment(target, profile=entry.get("profile", "quick"), seed=int(entry.get("seed", 0)), out_dir=out,
                           only=entry.get("only"), executor="local", progress=False)
        write_reports(a, out)
        return {"name": entry["name"], "status": "ok", "out": str(out), **a.summary()}
    except BastionError as exc:
        return {"name": entry["name"], "status": "error", "error": f"{type(exc).__name__}: {exc}"}


def assess_many(entries: list[dict[str, Any]], out_root: str | Path, executor: str = "local",
                ray_address: str | None = None, on_done: Any = None) -> list[dict[str, Any]]:
    out = str(Path(out_root))
    rows: list[dict[str, Any]] = []
    if executor == "local":
        for e in entries:
            rows.append(assess_one(e, out))
            if on_done:
                on_done(rows[-1])
        return rows
    if executor != "ray":
        raise ConfigError(f"unknown executor {executor!r}; use local or ray")
    import ray

    from bastion.assess.executors.ray import as_completed

    if not ray.is_initialized():
        ray.init(address=ray_address, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    task = ray.remote(num_cpus=1, max_retries=0)(assess_one)
    pending = {task.remote(e, out): e for e in entries}
    by_name: dict[str, dict[str, Any]] = {}
    for e, row, exc in as_completed(ray, pending):
        if exc is not None:
            row = {"name": e["name"], "status": "error", "error": f"ray task failed: {type(exc).__name__}"}
        by_name[e["name"]] = row
        if on_done:
            on_done(row)
    return [by_name[e["name"]] for e in entries]
