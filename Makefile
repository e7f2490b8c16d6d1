# strata — `make run` starts the registry with demo content; `make test` installs and runs the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
LISTEN ?= 127.0.0.1:5000
DATA ?= var
# Debian packages the tests drive (real clients, the reference registry, a load generator,
# PostgreSQL server binaries for the contract tier's throwaway cluster, gcc for the build
# jail's attack program; libseccomp2 for the jail's seccomp filter; chromium for the catalog's
# browser tests).
DEBS_TEST := skopeo podman buildah umoci runc docker-registry busybox-static wrk uidmap \
  gcc libc6-dev libseccomp2 git \
  postgresql chromium nginx debootstrap docker.io
# Debian packages the demo uses (a real busybox for the demo image).
DEBS_RUN := busybox-static libseccomp2 git
# Debian packages `make image` uses (the base rootfs, the RUN jail's seccomp, the export).
DEBS_IMAGE := debootstrap libseccomp2 skopeo git

.PHONY: run test lint typecheck unit bench install debs-test debs-run image clean

$(BIN)/strata: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	@touch $@

install: $(BIN)/strata

# Install missing Debian packages when root; otherwise name them.
define ensure_debs
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing; \
	  else \
	    echo "missing Debian packages:$$missing — install them with: sudo apt-get install$$missing"; \
	    echo "(tests that need them are skipped outside CI and fail in CI)"; \
	  fi; \
	fi
endef

debs-test:
	$(call ensure_debs,$(DEBS_TEST))

debs-run:
	$(call ensure_debs,$(DEBS_RUN))

lint: install
	$(BIN)/ruff check src tests bench deploy

typecheck: install
	$(BIN)/mypy
	$(BIN)/mypy --strict deploy/build_image.py
	$(BIN)/lint-imports

# A fresh pytest base dir per run: podman may leave busy mounts in old ones. Run as root, it
# behaves like CI ($$CI=1): the Debian packages are installed, and a missing client or power
# (root, overlayfs, cgroups, xattrs) fails its tests instead of skipping them.
test: install debs-test lint typecheck
	CI=$${CI:-$$([ "$$(id -u)" = 0 ] && echo 1)} $(BIN)/pytest -q --basetemp=/tmp/strata-test-$$(date +%s%N)

unit: install
	$(BIN)/pytest -q tests/unit tests/api

# The demo: demo/busybox, then the f25 release story (strata demo story): a busybox base, three
# images from git repositories the demo creates in $(DATA)/demo (the only file:// sources the
# server may clone), reviewed (a reviewer robot approves), built on the server, released on the
# schedule, then a base update and its rebuilds released out of band.
run: install debs-run
	@$(BIN)/strata init --data $(DATA)
	@mkdir -p $(DATA)/demo
	@set -m; $(BIN)/strata serve --data $(DATA) --listen $(LISTEN) \
	  --source-allow file://$(abspath $(DATA))/demo/ & pid=$$!; \
	trap 'kill $$pid 2>/dev/null; wait $$pid 2>/dev/null; exit 0' INT TERM; \
	token=$$($(BIN)/strata robot add demo-seed --role releng --data $(DATA) 2>/dev/null); \
	reviewer=$$($(BIN)/strata robot add demo-reviewer --role reviewer --data $(DATA) 2>/dev/null); \
	export STRATA_USER=demo-seed STRATA_PASSWORD=$$token STRATA_REVIEWER_PASSWORD=$$reviewer; \
	$(BIN)/strata demo seed --url http://$(LISTEN) --wait 30 || { kill $$pid; exit 1; }; \
	$(BIN)/strata demo story --url http://$(LISTEN) --work $(abspath $(DATA))/demo \
	  --reviewer demo-reviewer; status=$$?; \
	for robot in demo-seed demo-reviewer; do \
	  $(BIN)/strata robot revoke $$robot --data $(DATA) >/dev/null; done; \
	[ $$status = 0 ] || { kill $$pid; exit 1; }; \
	echo; \
	echo "strata is serving $(DATA)/ on http://$(LISTEN)  (Ctrl-C stops it)"; \
	echo; \
	echo "  pull:   skopeo inspect --tls-verify=false docker://$(LISTEN)/demo/busybox:latest"; \
	echo "          podman pull --tls-verify=false $(LISTEN)/demo/busybox:latest"; \
	echo "          podman run --rm --tls-verify=false $(LISTEN)/demo/busybox:latest"; \
	echo "  push:   skopeo copy --dest-tls-verify=false --dest-creds admin:PASSWORD docker-archive:IMAGE.tar docker://$(LISTEN)/demo/mine:1"; \
	echo "          podman login --tls-verify=false -u admin $(LISTEN) && podman push --tls-verify=false IMAGE $(LISTEN)/demo/mine:1"; \
	echo "          (admin's password: \$$STRATA_ADMIN_PASSWORD, or $(DATA)/auth/admin-password)"; \
	echo "  browse: $(BIN)/strata catalog --url http://$(LISTEN)"; \
	echo "          $(BIN)/strata tags demo/busybox --url http://$(LISTEN)"; \
	echo; \
	wait $$pid

# The container image of strata itself, built by strata's own builder (deploy/build_image.py:
# a debootstrapped Debian 12 + python3 base cached in /var/cache/strata-image, the wheels of
# this checkout, a throwaway `strata serve`, `strata build deploy/Containerfile`). Needs root
# (debootstrap, the RUN jail). Writes $(IMAGE_OUT) (podman load -i), or pushes to IMAGE_REF=.
IMAGE_OUT ?= build/strata-image.oci.tar
IMAGE_REF ?=
image: install
	$(call ensure_debs,$(DEBS_IMAGE))
	$(BIN)/python deploy/build_image.py $(if $(IMAGE_REF),--push $(IMAGE_REF),--output $(IMAGE_OUT))

bench: install debs-test
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(DATA) .mypy_cache .ruff_cache .pytest_cache
