"""The gateway: the shop's single external entry point, routing /api/v1 to the services."""
