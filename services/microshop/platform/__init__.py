"""What every microshop service needs: settings, database, bus, outbox/inbox, auth, web."""
