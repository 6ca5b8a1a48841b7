"""The users service: registers users, issues access tokens, answers who the caller is."""
