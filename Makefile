# Every target installs what it needs first: a fresh clone needs only `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
CLI    := $(VENV)/bin/causalvae
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip --quiet --disable-pip-version-check --no-input
OUT    := out

.PHONY: install test demo recipe evaluate bench docs clean

install: $(STAMP)

# torch first and pinned: this machine serves the 2.13.0 CPU wheel; an open range would pull CUDA.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -c constraints.txt "torch==2.13.0"
	$(PIP) install -c constraints.txt -e ".[test]"
	$(PY) -c "import causalvae, torch, pyro, pgmpy"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	mkdir -p $(OUT)
	$(CLI) graph show scenes
	$(CLI) query "P(action | reaction=Dying)"
	$(CLI) query "P(action | do(reaction=Dying))"
	$(CLI) query "P(reaction)"
	$(CLI) query "P(reaction | do(actor_attack=High, reactor_defense=Low))"
	$(CLI) query "P(reaction[action=Attack] | action=Taunt, reaction=Idle)"
	$(CLI) query "PNS(action=Attack vs Walk -> reaction=Dying)"
	$(CLI) graph draw scenes --out $(OUT)/scenes_dag.png
	$(CLI) generate scenes --n 2000 --seed 0 --out $(OUT)/scenes --force
	$(CLI) show $(OUT)/scenes --out $(OUT)/scenes_sheet.png
	$(CLI) train --data $(OUT)/scenes --out $(OUT)/run --epochs 2 --force
	$(CLI) summary $(OUT)/run
	$(CLI) reconstruct $(OUT)/run --n 8 --out $(OUT)/recon.png

# The default recipe of the scene world (docs/training.md): 20,000 scenes, about 12 minutes
# of training on 2 CPU cores; then its figures and record in docs/.
recipe: $(STAMP)
	$(CLI) generate scenes --n 20000 --seed 0 --out data/scenes --force
	$(CLI) train --data data/scenes --out runs/scenes --epochs 6 --val-per-epoch 2 --val-limit 1000 --force
	$(CLI) curve runs/scenes --out docs/img/scenes_elbo.png
	$(CLI) reconstruct runs/scenes --n 16 --out docs/img/scenes_recon.png
	mkdir -p docs/runs/scenes
	cp runs/scenes/metrics.csv runs/scenes/train.json runs/scenes/config.json docs/runs/scenes/

# The oracle and the evaluation report of the recipe's model (docs/evaluation.md), with the
# pictures and outputs shown there.
REPORT := docs/reports/scenes
evaluate: $(STAMP)
	test -f runs/scenes/config.json || $(MAKE) recipe
	COLUMNS=100 $(CLI) oracle train --world scenes --out oracles/scenes > $(REPORT)/oracle.txt
	$(CLI) evaluate runs/scenes --oracle oracles/scenes --out reports/scenes
	mkdir -p $(REPORT)
	cp reports/scenes/report.md reports/scenes/report.json $(REPORT)/
	cp reports/scenes/generation_tv.png docs/img/scenes_generation_tv.png
	COLUMNS=100 $(CLI) sample runs/scenes --given "reaction=Dying" --n 16 --out docs/img/scenes_given.png --oracle oracles/scenes > $(REPORT)/sample_given.txt
	COLUMNS=100 $(CLI) sample runs/scenes --do "actor_attack=High, reactor_defense=Low" --n 16 --out docs/img/scenes_do.png --oracle oracles/scenes > $(REPORT)/sample_do.txt
	COLUMNS=100 $(CLI) counterfactual runs/scenes --index 17 --do "action=Attack" --out docs/img/scenes_cf.png > $(REPORT)/counterfactual.txt

bench: $(STAMP)
	$(PY) bench/bench_exact.py --out bench/results/exact.json
	$(PY) bench/bench_render.py --out bench/results/render.json
	$(PY) bench/bench_grid.py --out bench/results/grid.json
	$(PY) bench/bench_train.py --out bench/results/train.json

# Regenerate every figure and output shown in README.md and docs/ (after `make bench`).
docs: $(STAMP)
	$(CLI) graph draw scenes --out docs/img/scenes_dag.png
	$(CLI) generate scenes --n 2000 --seed 0 --out $(OUT)/docs-scenes --force
	$(CLI) show $(OUT)/docs-scenes --out docs/img/scenes_sheet.png
	$(CLI) graph draw sprites --out docs/img/sprites_dag.png
	$(PY) -m causalvae.worlds.dsprites sheet docs/img/sprites_sheet.png
	$(PY) docs/render.py

clean:
	rm -rf $(OUT) .pytest_cache
