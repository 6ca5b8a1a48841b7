"""The payments service: charges orders through the simulated provider, emits the outcome."""
