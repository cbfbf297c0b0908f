"""PostgreSQL programs and local clusters."""
