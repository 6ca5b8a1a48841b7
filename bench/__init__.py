"""Benchmarks run by `make bench` (bench/run.py): each prints a table and writes JSON and a plot."""
