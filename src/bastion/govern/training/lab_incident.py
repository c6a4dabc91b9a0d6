"""Lab 6: respond to an incident and export a verified forensic bundle."""

from __future__ import annotations

import json
from pathlib import Path

from bastion.govern.training.base import Lab, LabCheck

README = """# Lab 6 — respond to an incident and export the forensic bundle

Trigger an incident (e.g. lab 4's extraction, or `bastion demo attack-and-respond`), then:
`bastion incident list`, `bastion incident ack ID --owner YOU`, run its playbook,
`bastion incident resolve ID --note "what you did"`, and
`bastion incident export ID --out {workdir}/bundle.tar.gz`.
Check with `bastion learn check 6 --dir {workdir}`: Bastion verifies the bundle offline (digests, signature, audit
chain and inclusion proofs) and that the incident in it was acknowledged and resolved. EU AI Act Art. 73; GDPR Art. 33.
"""


class IncidentLab(Lab):
    number = 6
    slug = "incident-response"
    title = "Respond to an incident and export the forensic bundle"
    goal = "acknowledge and resolve an incident, then export a signed forensic bundle that verifies"
    readme = README

    def check(self, workdir: Path) -> LabCheck:
        import importlib
        import tarfile

        from bastion.core.errors import BastionError

        bundle = workdir / "bundle.tar.gz"
        if not bundle.is_file():
            return LabCheck(6, False, 0.0, f"missing {bundle} (bastion incident export ID --out {bundle})")
        verify = importlib.import_module("bastion.respond.forensics").verify_bundle
        try:
            result = verify(bundle)
        except BastionError as exc:
            return LabCheck(6, False, 0.0, f"the bundle does not verify: {exc}")
        try:
            with tarfile.open(bundle, mode="r:gz") as tar:
                member = tar.getmember("incident.json")
                fh = tar.extractfile(member) if member.isfile() and member.size < 10_000_000 else None
                incident = json.loads(fh.read()) if fh is not None else {}
        except (tarfile.TarError, KeyError, ValueError, OSError):
            incident = {}
        status, owner = str(incident.get("status", "unknown")), incident.get("owner")
        details = {"verification": result, "incident_status": status, "owner": owner}
        if status == "resolved" and owner:
            return LabCheck(6, True, 1.0, f"incident {result.get('incident_id')} acknowledged by {owner} and resolved; "
                            f"bundle verifies ({result.get('audit_records')} audit records)", details)
        return LabCheck(6, False, 0.5, f"the bundle verifies, but the incident in it is '{status}'"
                        + ("" if owner else " with no owner") + ": acknowledge and resolve it, then export again",
                        details)
