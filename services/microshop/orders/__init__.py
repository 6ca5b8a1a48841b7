"""The orders service: the catalog, order placement (idempotent) and the order's state."""
