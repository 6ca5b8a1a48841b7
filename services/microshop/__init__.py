"""microshop: the bundled services (gateway, users, orders, payments, notifications)."""

SERVICES = ("gateway", "users", "orders", "payments", "notifications")
