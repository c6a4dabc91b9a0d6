"""Membership inference: was this record in the model's training set?

One module per method, each reading only its own configuration; :class:`MembershipConfig` holds the
user-facing options of all of them and translates them (``cfg.lira()``, ``cfg.rmia()``, …):

- ``loss`` / ``confidence`` (:mod:`.threshold`) — LOSS (Yeom et al. 2018): score = log p_y(x);
  max-probability threshold (Salem et al. 2019).
- ``label_only`` (:mod:`.label_only`) — for label-only APIs (Choquette-Choo et al. 2021): score =
  fraction of ``label_only_queries`` Gaussian-perturbed copies of x still classified as y.
- ``lira`` (:mod:`.lira`, fits in :mod:`.gaussian`, learned scorer in :mod:`.learned`, neighbour
  calibration in :mod:`.neighbours`) — LiRA (Carlini et al. 2022): Gaussian fits of the logit-scaled
  confidence under reference models. ``reference_mode="offline"`` trains them on population data only
  (score = z-score against the OUT fit); ``"online"`` on the candidate records themselves, each on
  ``reference_set_size`` of them (best: the target's training-set size) with balanced masks, so every
  candidate has IN and OUT fits (score = the log-likelihood ratio). ``variance``: ``"global"``,
  ``"per_example"`` or ``"shrunk"`` (default: per-record, shrunk towards the global one with the weight
  of ``variance_prior`` records). ``lira_scorer="learned"`` (default) replaces the Gaussian score by a
  decision function learned from the reference models themselves, calibrated against each record's
  ``neighbours``. ``augment``: also score 1-pixel shifts of image inputs (off by default).
- ``rmia`` (:mod:`.rmia`) — RMIA (Zarifzadeh et al. 2024): likelihood ratio of x against population
  points z, with Pr(x) from the OUT reference models (offline approximation with ``rmia_offline_a``).

The default (``MembershipConfig()``) is online LiRA, the strongest attack measured (docs/privacy.md has
the numbers); :func:`default_method` picks ``label_only`` instead when the model answers labels only.
Reference models (:mod:`.references`) are trained in one vectorised batch
(``bastion.attacks.inference.reference``) and planned by ``bastion.attacks.inference.planning``: by
default a re-initialised clone of the target's own architecture (proxy MLP when it cannot be cloned,
with the reason in ``params``), a training recipe fitted to the target's fit on its members
(``reference_epochs`` set = a fixed recipe), and as many models as ``time_budget_s`` affords
(``n_reference`` set = that many). Offline LiRA and RMIA need attacker-held population data
(``x_pop``), online LiRA does not.

Examples:
    >>> from bastion.models.zoo import demo_target
    >>> t = demo_target("digits")
    >>> r = run_membership(t.model, t.data.x_train[:300], t.data.y_train[:300],
    ...                    t.data.x_test[:300], t.data.y_test[:300], MembershipConfig("loss"))
    >>> 0.0 <= r.metrics.auc <= 1.0
    True
"""

from bastion.attacks.inference.membership.base import MembershipResult
from bastion.attacks.inference.membership.config import MEMBERSHIP_METHODS, MembershipConfig, MembershipMethod
from bastion.attacks.inference.membership.lira import LEARNED_MIN_EXAMPLES, LiraScorer, LiraVariance
from bastion.attacks.inference.membership.neighbours import candidate_neighbours
from bastion.attacks.inference.membership.references import online_set_size, reference_fit
from bastion.attacks.inference.membership.run import default_method, run_membership

__all__ = [
    "LEARNED_MIN_EXAMPLES",
    "MEMBERSHIP_METHODS",
    "LiraScorer",
    "LiraVariance",
    "MembershipConfig",
    "MembershipMethod",
    "MembershipResult",
    "candidate_neighbours",
    "default_method",
    "online_set_size",
    "reference_fit",
    "run_membership",
]
