"""microshop: the bundled services, one folder each, listed in `microshop.registry`."""
