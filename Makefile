# Thin wrapper: the README's two commands, plus a few conveniences.
# All real work is in CMake (build), scripts/ (orchestration) and the test runners.
BUILD ?= build
JOBS ?= 2
PYTHON ?= /usr/bin/python3

.PHONY: all deps build test run fuzz fuzz-coverage bench faults mutation clean format

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

# Mutation analysis of reference/src against the suite (not in make test:
# about an hour; conformance/MUTATION.md). MUTATION_ARGS, e.g. --sample 10.
mutation: deps
	@$(PYTHON) conformance/mutation/mutate.py $(MUTATION_ARGS)

format:
	@clang-format -i reference/src/*.[ch] reference/tests/*.[ch] reference/tools/*.c \
		$(wildcard fuzz/*.c bench/*.c)

clean:
	rm -rf $(BUILD) build-*
