"""The notifications service: tells a user their order is paid, once per order."""
