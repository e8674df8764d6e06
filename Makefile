# Shortcuts for dev.py, which creates .venv and installs sessionkit[dev] on first use.
.PHONY: demo demo-cluster test lint docs release-check

demo:
	python3 dev.py demo

demo-cluster:
	python3 dev.py demo-cluster

test:
	python3 dev.py test

lint:
	python3 dev.py lint

docs:
	python3 dev.py docs

release-check:
	python3 dev.py release-check
