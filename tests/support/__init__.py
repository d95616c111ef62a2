"""Test helpers shared by the functional tests, the conformance suite and the benchmarks."""
