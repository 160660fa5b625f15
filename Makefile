# Parley. `make test` is what CI runs (.ci/run).
GO        ?= go
BIN       := bin/parley
FUZZTIME  ?= 30s

.PHONY: build run test fuzz bench clean

build:
	$(GO) build -o $(BIN) ./cmd/parley

run: build
	./$(BIN) serve --addr :8060

test:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# Each fuzz target for FUZZTIME (go test runs one fuzz target at a time).
fuzz:
	$(GO) test ./codec -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME)

bench:
	$(GO) test ./codec -run '^$$' -bench . -benchmem

clean:
	rm -rf bin bench-results
