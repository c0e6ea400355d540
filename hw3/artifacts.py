"""Every file one step writes and another reads, named once: its writer and its readers use these.

A run folder (``runs/<model>``, ``runs/uda/<method>_<source>-<target>``) holds the checkpoints,
the per-step log and, for a digit classifier, its metrics; the report folder holds the
figures and tables named after the assignment's items (``fig1_2`` is Problem 1, item 2).
"""

from __future__ import annotations

# In a run folder (hw3/training.py writes the checkpoints; each trainer its log)
LATEST = "latest.pt"  # everything, for resuming
BEST = "best.pt"  # the same at the kept evaluation
MODEL = "model.pt"  # what inference needs: the file that is published
LOG = "log.csv"  # one row per step, evaluations on their epoch's last row
METRICS = "metrics.json"  # train_uda.py: the kept evaluation's target test accuracy and what chose it

# In the report folder (plots.py writes them; hw3/report_content.py shows them)
VAE_CURVES = "fig1_2.png"
VAE_TABLE = "table1_3.png"
VAE_TABLE_CSV = "table1_3.csv"  # the same reconstructions' per-image MSE
VAE_SAMPLES = "fig1_4.png"
VAE_TSNE = "fig1_5.png"
GAN_SAMPLES = "fig2_2.png"
GAN_LOSSES = "fig2_losses.png"
VAE_VS_GAN = "fig2_vae_vs_gan.png"
UDA_TABLE = "uda_accuracy.csv"  # under the report's uda/ folder, with its markdown copy
UDA_TABLE_MD = "uda_accuracy.md"
DDPM_REVERSE = "fig5_reverse.png"
DIGIT_CURVES = "fig5_curves.png"

# The published model files of the grader's scripts (their names also appear in hw3_p1.sh ... hw3_p5.sh)
PUBLISHED_VAE = "vae.pt"
PUBLISHED_GAN = "gan.pt"
PUBLISHED_DIGITS = "digits.pt"


def tsne_figure(run_name: str, colour: str) -> str:
    """A UDA run's t-SNE, by ``colour`` ("class" or "domain"), under the report's uda/ folder."""
    return f"tsne_{run_name}_{colour}.png"


def digit_grid(model: str) -> str:
    """A Problem 5 generator's grid of 10 digits per class (``model``: "acgan" or "ddpm")."""
    return f"fig5_{model}_grid.png"
