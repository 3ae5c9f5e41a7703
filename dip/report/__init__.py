"""Benchmark reports: gather run records into tidy tables, render comparison tables and figures."""
