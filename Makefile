# Benchmarks that are not tests: `go test ./...` (scripts/test.sh) never runs them.
.PHONY: bench-responders
bench-responders:
	bench/run.sh $(BENCH_ARGS)
