"""The ``bastion`` command tree: the root app and the shared command groups.

Feature modules in ``bastion.cli`` attach commands to these groups, e.g.::

    from bastion.cli.groups import attack_app

    @attack_app.command("evasion")
    def evasion(...): ...

``bastion.cli.main`` imports every module in this package, then mounts the groups.
CLI modules import heavy libraries (torch, sklearn, fastapi…) inside command functions, not
at module level, so ``bastion --help`` stays fast.
"""

from __future__ import annotations

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    name="bastion",
    help="Bastion: secure ML models across their life — assess, harden, sign, serve, monitor, govern.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings=CONTEXT,
)


def _group(name: str, help_text: str) -> typer.Typer:
    return typer.Typer(name=name, help=help_text, no_args_is_help=True, pretty_exceptions_enable=False,
                       context_settings=CONTEXT)


attack_app = _group("attack", "Red-team attacks: evasion, membership, attribute, inversion, extraction, poison.")
harden_app = _group("harden", "Harden a model: adversarial training, DP-SGD, federated learning, encryption.")
model_app = _group("model", "Model files as supply chain: scan, sign, verify, BOM, model card.")
keys_app = _group("keys", "Signing keys shared by model and data signing.")
data_app = _group("data", "Data security: manifests, validation, anomalies, PII, encryption, poisoning.")
registry_app = _group("registry", "The gateway's signed-model registry.")
clients_app = _group("clients", "Gateway client identities and API keys.")
audit_app = _group("audit", "The gateway's hash-chained audit log.")
db_app = _group("db", "Bastion's database (SQLite by default, PostgreSQL by URL).")
monitor_app = _group("monitor", "Monitoring: drift, anomalies, extraction detection.")
incident_app = _group("incident", "Incidents: list, acknowledge, resolve, export and verify forensic bundles.")
govern_app = _group("govern", "Governance: control coverage, EU AI Act tiering, risks, reports, Annex IV.")
he_app = _group("he", "Encrypted inference (CKKS via TenSEAL): keys, encrypt, serve, decrypt.")
demo_app = _group("demo", "End-to-end demonstrations.")
watch_app = _group("watch", "Continuous re-assessment of registered models: add, list, remove, run, serve.")
principals_app = _group("principals", "People, teams and gateway clients that data sets are granted to (X25519 keys).")

GROUPS: list[typer.Typer] = [
    attack_app,
    harden_app,
    model_app,
    keys_app,
    data_app,
    registry_app,
    clients_app,
    audit_app,
    db_app,
    monitor_app,
    incident_app,
    govern_app,
    he_app,
    demo_app,
    principals_app,
    watch_app,
]
