# Thin wrapper: the README's two commands, plus a few conveniences.
# All real work is in CMake (build), scripts/ (orchestration) and the test runners.
BUILD ?= build
JOBS ?= 2
PYTHON ?= /usr/bin/python3

.PHONY: all deps build test run fuzz fuzz-coverage bench faults clean format

all: build

deps:
	@scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DMW_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

test: deps
	@BUILD=$(BUILD) JOBS=$(JOBS) PYTHON=$(PYTHON) scripts/test.sh

run: deps
	@JOBS=$(JOBS) scripts/run.sh $(BUILD)

fuzz: deps
	@scripts/fuzz.sh run

fuzz-coverage: deps
	@scripts/fuzz.sh coverage

bench: build
	@scripts/bench.sh $(BUILD)

faults: build
	@PYTHON=$(PYTHON) scripts/faults.sh long $(BUILD)

format:
	@clang-format -i reference/src/*.[ch] reference/tests/*.[ch] reference/tools/*.c \
		$(wildcard fuzz/*.c bench/*.c)

clean:
	rm -rf $(BUILD) build-*
