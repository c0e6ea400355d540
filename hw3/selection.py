"""Label-free checkpoint selection for domain adaptation: scores that need no target label.

Each score is computed at every evaluation of ``train_uda.py`` and logged; ``--select``
names the one that decides which evaluation's weights become ``model.pt``, or ``last``.
``CRITERIA`` maps each score's name to whether higher is better; ``CHOICES`` is what
``--select`` accepts: every score, and ``last``. The maths is pure and tested on closed forms.

- ``source_val_acc``: accuracy on a held-out split of the labelled source train set.
- ``entropy``: mean entropy of the predictions on unlabelled target train images
  (Grandvalet & Bengio 2005; Morerio et al., ICLR 2018); lower is better.
- ``info_max``: H(mean prediction) - mean H(prediction) on the same images, the
  information-maximisation objective (Krause et al. 2010; SHOT, Liang et al. 2020);
  confident *and* class-balanced predictions score high.
- ``snd``: soft neighbourhood density (Saito et al., ICCV 2021,
  https://arxiv.org/abs/2108.10860); higher is better.
- ``dev``: deep embedded validation (You et al., ICML 2019,
  http://proceedings.mlr.press/v97/you19a.html): the source-validation loss weighted
  by a domain classifier's density ratio, with a control variate; lower is better.

``last`` (the last evaluation) is a choice, not a score: nothing is logged for it. ``TARGET_FREE`` names
the choices that read no target image (``source_val_acc`` and ``last``): the lower bound keeps its
evaluation by one of them, so it stays unadapted.
"""

from __future__ import annotations

import numpy as np
import torch

from hw3.training import improves

CRITERIA = {"source_val_acc": True, "entropy": False, "info_max": True, "snd": True, "dev": False}
CHOICES = (*CRITERIA, "last")
# The choices that read no target image: the only ones a method that must not see the target (source-only) may use.
TARGET_FREE = ("source_val_acc", "last")


def _entropy(probs: torch.Tensor) -> torch.Tensor:
    return -(probs * probs.clamp_min(1e-12).log()).sum(dim=-1)


def mean_entropy(probs: torch.Tensor) -> float:
    """Mean entropy (nats) of the rows of ``probs`` ``(N, C)``."""
    return _entropy(probs).mean().item()


def information_maximization(probs: torch.Tensor) -> float:
    """H(mean of the rows) - mean H(row): log C for confident, balanced predictions, 0 for uniform or collapsed ones."""
    return (_entropy(probs.mean(dim=0)) - _entropy(probs).mean()).item()


def soft_neighborhood_density(probs: torch.Tensor, temperature: float = 0.05) -> float:
    """SND (Saito et al. 2021, eq. 1-3): the mean entropy of each sample's softmax similarity to the others.

    Rows of ``probs`` ``(N, C)`` are L2-normalised; similarities to the other samples
    (the diagonal excluded) are scaled by ``1 / temperature`` and turned into a
    distribution whose entropy is high when a sample has many close neighbours.
    """
    unit = torch.nn.functional.normalize(probs.double(), dim=1)
    similarity = unit @ unit.T / temperature  # (N, N)
    similarity.fill_diagonal_(float("-inf"))
    return _entropy(similarity.softmax(dim=1)).mean().item()


def density_ratio(source_features: np.ndarray, target_features: np.ndarray, query: np.ndarray,
                  seed: int = 0) -> np.ndarray:
    """w(x) = p_target(x) / p_source(x) at ``query`` from a logistic domain classifier (You et al., sec. 4.1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([source_features, target_features])
    y = np.r_[np.zeros(len(source_features)), np.ones(len(target_features))]
    scaler = StandardScaler().fit(x)
    classifier = LogisticRegression(max_iter=500, random_state=seed).fit(scaler.transform(x), y)
    p_target = classifier.predict_proba(scaler.transform(query))[:, 1].clip(1e-6, 1 - 1e-6)
    return p_target / (1 - p_target) * len(source_features) / len(target_features)


def deep_embedded_validation(weights: np.ndarray, losses: np.ndarray) -> float:
    """DEV risk (You et al. 2019, algorithm 1): mean(w L) + eta mean(w) - eta, eta = -Cov(wL, w) / Var(w).

    The control variate ``eta`` uses that E[w] = 1 to cut the variance of the
    importance-weighted source-validation loss. With all weights 1 it is the plain mean loss.
    """
    weighted = weights * losses
    variance = np.var(weights, ddof=1)
    eta = 0.0 if variance < 1e-12 else -np.cov(weighted, weights)[0, 1] / variance
    return float(weighted.mean() + eta * weights.mean() - eta)


def keeps(best: float | None, new: float | None, choice: str) -> bool:
    """Whether an evaluation scoring ``new`` replaces the one kept so far (scoring ``best``; None: none yet).

    The one rule of which evaluation is kept, for training (``train_uda.py``) and for the study
    (:func:`pick`) alike: ``last`` always replaces; a score replaces only when strictly better, so the
    first of ties stays.
    """
    return choice == "last" or improves(best, new, CRITERIA[choice])


def pick(values: list[float], choice: str) -> int:
    """Index of the evaluation ``choice`` (one of ``CHOICES``) keeps among ``values``, by :func:`keeps`.

    For ``last`` only the number of ``values`` matters.
    """
    kept = None
    for i, value in enumerate(values):
        if keeps(None if kept is None else values[kept], value, choice):
            kept = i
    return kept
