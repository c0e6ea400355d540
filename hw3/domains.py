"""The assignment's digit domains and adaptation scenarios: the names the data module, the
domain-adaptation family and the report all share (``datasets.py`` re-exports them)."""

# The assignment's three domains, plus "mnist": the grayscale digits the built-in mnistm is
# blended from (mnist -> mnistm is the DANN paper's classic pair, used to study the methods).
DOMAINS = ("usps", "mnistm", "svhn", "mnist")
# (source, target) pairs of the assignment, in the order of its table: the graded models.
SCENARIOS = (("usps", "mnistm"), ("mnistm", "svhn"), ("svhn", "usps"))
DIGITS_DOMAIN = "mnistm"  # the domain Problem 5 generates (the later years' reports: MNIST-M)
