# Veil's build, test and benchmark entry points. Every target installs what
# it needs (through `deps`) so that a fresh Debian machine works with no
# manual set-up.

GO := $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Debian packages the tests and the demo rely on.
DEB_DEPS := gcc libc6-dev busybox-static strace podman conmon containerd runc tmux git sqlite3 python3 gzip tar
TEST_TIMEOUT ?= 20m

.PHONY: all build deps demo test vet bench readme bench-readme clean

all: build

build:
	$(GO) build -o bin/runsc ./runsc
	@if [ -d shim/cmd ]; then \
		echo "$(GO) build -o bin/containerd-shim-runsc-v1 ./shim/cmd/..."; \
		$(GO) build -o bin/containerd-shim-runsc-v1 ./shim/cmd/...; \
	fi

# deps runs apt-get only when one of the packages is missing, so that
# `make test` stays fast and offline on a prepared machine.
deps:
	@missing=""; \
	for pkg in $(DEB_DEPS); do \
		dpkg-query -W -f='$${Status}' $$pkg 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; \
	fi

demo: deps build
	@echo '== busybox sh in a sandbox: a pipe and a loop'
	bin/runsc do /bin/busybox sh -c 'echo hello from $$(uname -s) inside Veil | tr a-z A-Z; for i in 1 2 3; do echo "loop $$i"; done; echo pid=$$$$'
	@echo '== the host'"'"'s dynamically linked ls, in a sandbox'
	bin/runsc do /bin/ls -la /usr

vet:
	$(GO) vet ./...

test: deps build vet
	$(GO) test -timeout $(TEST_TIMEOUT) ./...

bench: deps build
	$(GO) run ./test/benchmarks/cmd/bench

# readme regenerates the syscall table in README.md from the live binary;
# bench-readme does the same for the benchmark table (slow: it runs them).
readme: build
	bin/runsc syscalls --format=markdown > bin/syscalls.md
	$(GO) run ./test/cmd/mdsection -file README.md -section syscalls \
		-table-header '| nr | name | support | note |' < bin/syscalls.md

bench-readme: deps build
	$(GO) run ./test/benchmarks/cmd/bench > bin/bench.md
	$(GO) run ./test/cmd/mdsection -file README.md -section bench < bin/bench.md

clean:
	rm -rf bin test/syscalls/bin test/benchmarks/bin
