# `make test` and `make demo` install what they need into .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt requirements-fid.txt | cksum | cut -d' ' -f1)
# The scripts call `python3`: put the virtual environment's first on PATH.
RUN := PATH="$(CURDIR)/$(BIN):$$PATH"
# pip compiles the installed packages' bytecode on one core (40 of an install's 105 s here); compileall
# does it on every core instead. Files in another Python's syntax (a few in torch's tests) are skipped,
# as pip skips them.
PIP := --quiet --disable-pip-version-check --no-compile

.PHONY: install test test-floor demo grade data report clean distclean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt requirements-fid.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP) -r requirements-dev.txt
	$(BIN)/python -m pip install $(PIP) --no-deps -r requirements-fid.txt
	$(BIN)/python -m compileall -qq -j 0 $(VENV)/lib || true
	rm -f $(VENV)/.installed-*
	touch $@

test: $(STAMP)
	$(RUN) python -m pytest

# The suite against the lowest versions requirements*.txt allow (each `>=` read as `==`;
# what they pull in is the newest that fits), in an environment of its own, less the slow
# whole-command runs (marker whole_run) whose parts the other tests also cover.
FLOOR := .venv-floor
test-floor:
	$(PYTHON) -m venv --clear $(FLOOR)
	sed -n 's/^\([A-Za-z0-9_.-]*\)>=\(.*\)$$/\1==\2/p' requirements.txt requirements-dev.txt > $(FLOOR)/floor.txt
	$(FLOOR)/bin/python -m pip install $(PIP) -r requirements-dev.txt -c $(FLOOR)/floor.txt
	$(FLOOR)/bin/python -m pip install $(PIP) --no-deps -r requirements-fid.txt
	$(FLOOR)/bin/python -m compileall -qq -j 0 $(FLOOR)/lib || true
	$(FLOOR)/bin/python -m pip list --format=freeze | grep -iE '^(torch|torchvision|numpy|pandas|scikit-learn|matplotlib|pillow|tqdm|torch-fidelity|fpdf2)=='
	PATH="$(CURDIR)/$(FLOOR)/bin:$$PATH" python -m pytest -m "not whole_run"

# Outputs only (runs, report, built-in data); distclean also removes the environments.
clean:
	rm -rf demo_data demo_heldout demo_busy demo_heldout_busy report runs .pytest_cache

distclean: clean
	rm -rf $(VENV) $(FLOOR)

# The whole homework on the built-in data, short settings: report/README.md.
demo: $(STAMP)
	$(RUN) python pipeline.py --profile demo

# After `make demo`: the grader's five scripts as a grader runs them, on the models the demo published
# (HW3_MODEL_DIR) and its test digits, with .venv's python3 first on PATH; outputs and accuracies in OUT:
#   make grade [MODELS=runs/demo/models] [DATA=runs/demo/demo_data] [OUT=runs/grade]
GRADE := $(RUN) HW3_MODEL_DIR="$(or $(MODELS),runs/demo/models)"
GRADE_DIGITS = $(or $(DATA),runs/demo/demo_data)/digits
GRADE_OUT = $(or $(OUT),runs/grade)
grade: $(STAMP)
	mkdir -p "$(GRADE_OUT)"
	$(GRADE) bash hw3_p1.sh "$(GRADE_OUT)/fig1_4.png"
	$(GRADE) bash hw3_p2.sh "$(GRADE_OUT)/fig2_2.png"
	for p in 3 4; do for t in mnistm svhn usps; do \
		$(GRADE) bash hw3_p$$p.sh "$(GRADE_DIGITS)/$$t/test" $$t "$(GRADE_OUT)/p$${p}_$$t.csv" && \
		printf 'hw3_p%s.sh %s: ' $$p $$t && $(RUN) python score.py "$(GRADE_OUT)/p$${p}_$$t.csv" "$(GRADE_DIGITS)/$$t/test.csv" \
		|| exit 1; done; done
	$(GRADE) bash hw3_p5.sh "$(GRADE_OUT)/digits"

# The real hw3_data, built from the public originals (downloads kept in DATA.downloads; a rerun resumes):
#   make data [DATA=hw3_data] [MIRROR=URL]
data: $(STAMP)
	$(RUN) python make_data.py --out "$(or $(DATA),hw3_data)"$(if $(MIRROR), --mirror "$(MIRROR)")

# The same on the real data with full settings, in runs/full:
#   make report DATA=path/to/hw3_data [BASE_URL=https://...] [JOBS=4] [RESTART=1] [INCEPTION=weights.pth]
report: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make report DATA=path/to/hw3_data [BASE_URL=URL] [JOBS=N] [RESTART=1] [INCEPTION=FILE]" >&2; exit 2; }
	$(RUN) python pipeline.py --profile full --data "$(DATA)" $(if $(BASE_URL),--base-url "$(BASE_URL)") \
		$(if $(JOBS),--jobs $(JOBS)) $(if $(RESTART),--restart) $(if $(INCEPTION),--inception-weights "$(INCEPTION)")
