"""What the homework's scripts share: the digit network and the UDA methods' records, training
and checkpoints, label-free selection, the report, image output and the common policies.

The top level keeps the assignment's files (models, datasets, trainers, plots, grader
scripts) and the scripts a user runs; everything they lean on lives here.
"""
