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
GENERATED = "generated"  # a digit generator's folder of 1000 digits (generate_digits.py), scored by the pipeline
FAKE_FACES = "fake"  # a face model's generated faces (fidelity.py generate), scored by fidelity.py score
UDA_RUNS = "uda"  # the folder of the digit classifiers' run folders, under a runs folder
RUNS = "runs"  # the runs folder a script writes to when it is given none

# In the report folder (plots.py writes them; hw3/report_content.py shows them)
VAE_CURVES = "fig1_2.png"
VAE_TABLE = "table1_3.png"
VAE_TABLE_CSV = "table1_3.csv"  # the same reconstructions' per-image MSE
VAE_SAMPLES = "fig1_4.png"
VAE_TSNE = "fig1_5.png"
GAN_SAMPLES = "fig2_2.png"
GAN_LOSSES = "fig2_losses.png"
VAE_VS_GAN = "fig2_vae_vs_gan.png"
UDA_FOLDER = "uda"  # plots.py uda's table and t-SNE figures, in the report folder
UDA_TABLE = "uda_accuracy.csv"  # under UDA_FOLDER, with its markdown copy
UDA_TABLE_MD = "uda_accuracy.md"
DDPM_REVERSE = "fig5_reverse.png"
DIGIT_CURVES = "fig5_curves.png"
REPORT_MD = "README.md"  # the report itself (hw3/report_content.py), and its PDF
REPORT_PDF = "report.pdf"
# The pipeline's own files in the report folder: the grader scripts' outputs and the scores it reads back
GRADER_DIGITS = "grader_digits"  # hw3_p5.sh's 1000 digits
PREDICTIONS = "predictions"  # hw3_p3.sh's and hw3_p4.sh's CSVs

# The published model files of the grader's scripts (their names also appear in hw3_p1.sh ... hw3_p5.sh)
PUBLISHED_VAE = "vae.pt"
PUBLISHED_GAN = "gan.pt"
PUBLISHED_DIGITS = "digits.pt"


# Names made from a few words: each is its template's ``format``, called with the words in order.
tsne_figure = "tsne_{}_{}.png".format  # (run name, "class" or "domain"): a UDA run's t-SNE, under UDA_FOLDER
digit_grid = "fig5_{}_grid.png".format  # ("acgan" or "ddpm"): a Problem 5 generator's 10 digits per class
sample_grid = "samples/step_{:06d}.png".format  # (update): the grid a GAN or DDPM trainer draws, in its run folder
grader_copy = "grader_{}".format  # (report figure): what the grader's script writes for it, beside the report's own
prediction_csv = "{}_{}.csv".format  # (method, target): a grader script's CSV, under PREDICTIONS
fidelity_scores = "fidelity_{}.json".format  # ("vae" or "gan"): fidelity.py score's FID/KID/IS JSON
digit_scores = "digits_{}.json".format  # ("acgan" or "ddpm"): generate_digits.py's accuracy and FID/KID JSON
