"""Lab 1: craft an adversarial example that fools the digits model.

The workspace holds one correctly classified test digit, its label and an L∞ budget. The learner submits
``adv.npz`` (key ``x_adv``); Bastion checks the budget, the pixel range and — with the model itself —
that the prediction changed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bastion.core.errors import InvalidInputError
from bastion.core.paths import atomic_write_bytes
from bastion.govern.training.base import Lab, LabCheck

EPS = 0.25
INSTRUCTIONS = """# Lab 1 — fool the digits model with an adversarial example

`target.npz` holds one 8×8 digit `x` (shape (1, 1, 8, 8), pixels in [0, 1]) that the demo digits model
classifies correctly as `y`. Your goal: an image `x_adv` with

- every pixel within **{eps}** of `x` (L∞ budget) and inside [0, 1],
- that the model classifies as **anything but `y`**.

Save it as `adv.npz` with key `x_adv` in this folder, then run `bastion learn check 1 --dir {workdir}`.

Hints: `bastion attack evasion --demo digits --attack pgd --eps {eps} --save-adv …` runs the attack on many
samples; in Python, `from bastion.attacks.evasion import PGD` and `bastion.models.zoo.demo_target("digits")`
(`target.model.module` returns logits). Why it matters: this is MITRE ATLAS AML.T0015 (Evade AI Model) and
OWASP ML01 (Input Manipulation); the EU AI Act Art. 15(5) names adversarial examples explicitly.
"""


class EvasionLab(Lab):
    number = 1
    slug = "adversarial-example"
    title = "Craft an adversarial example that fools the digits model"
    goal = f"an L∞ ≤ {EPS} perturbation of the given digit that the digits model misclassifies"
    readme = INSTRUCTIONS
    readme_fields = {"eps": EPS}

    def prepare(self, workdir: Path, seed: int) -> list[str]:
        from bastion.models.zoo import demo_target

        target = demo_target("digits")
        x_test, y_test = target.data.x_test, target.data.y_test
        assert x_test is not None and y_test is not None
        pred = target.model.predict_proba(x_test).argmax(axis=1)
        correct = np.flatnonzero(pred == y_test)
        idx = int(np.random.default_rng(seed).choice(correct))
        x = x_test[idx : idx + 1].astype(np.float32)
        import io

        buf = io.BytesIO()
        np.savez(buf, x=x, y=np.array([int(y_test[idx])]), eps=np.array(EPS), index=np.array(idx))
        atomic_write_bytes(workdir / "target.npz", buf.getvalue(), mode=0o644)
        return ["target.npz"]

    def check(self, workdir: Path) -> LabCheck:
        from bastion.models.zoo import demo_target

        tgt_path, adv_path = workdir / "target.npz", workdir / "adv.npz"
        if not tgt_path.is_file():
            raise InvalidInputError(f"{tgt_path} is missing: run 'bastion learn start 1 --dir {workdir}' first")
        if not adv_path.is_file():
            return LabCheck(1, False, 0.0, f"no submission: save your image as {adv_path} (key x_adv)")
        with np.load(tgt_path, allow_pickle=False) as t:
            x, y, eps = t["x"], int(t["y"][0]), float(t["eps"])
        try:
            with np.load(adv_path, allow_pickle=False) as a:
                x_adv = np.asarray(a["x_adv"], dtype=np.float32)
        except (KeyError, ValueError, OSError) as exc:
            raise InvalidInputError(f"{adv_path}: expected an .npz with array 'x_adv' ({exc})") from None
        x_adv = x_adv.reshape(x.shape) if x_adv.size == x.size else x_adv
        if x_adv.shape != x.shape:
            return LabCheck(1, False, 0.0, f"x_adv has shape {x_adv.shape}; expected {x.shape}")
        if not np.isfinite(x_adv).all():
            return LabCheck(1, False, 0.0, "x_adv contains NaN or infinity")
        linf = float(np.abs(x_adv - x).max())
        details = {"linf": round(linf, 6), "eps": eps, "true_label": y,
                   "min": float(x_adv.min()), "max": float(x_adv.max())}
        if linf > eps + 1e-5:
            return LabCheck(1, False, 0.0, f"perturbation too large: L∞ = {linf:.4f} > {eps}", details)
        if x_adv.min() < -1e-6 or x_adv.max() > 1 + 1e-6:
            return LabCheck(1, False, 0.0, "pixels must stay inside [0, 1]", details)
        proba = demo_target("digits").model.predict_proba(x_adv)[0]
        pred = int(proba.argmax())
        details.update(predicted_label=pred, confidence=round(float(proba[pred]), 4))
        if pred == y:
            return LabCheck(1, False, 0.0, f"the model still says {y} (confidence {proba[pred]:.2f}); "
                            "take more or larger steps inside the budget", details)
        return LabCheck(1, True, 1.0, f"fooled: the model now says {pred} ({proba[pred]:.0%}) for a {y}, "
                        f"with L∞ = {linf:.3f} ≤ {eps}", details)
