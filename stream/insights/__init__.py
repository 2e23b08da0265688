"""Insights computed from the store: output variance, silent changes, budget breaches."""
