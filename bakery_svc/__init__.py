"""bakery service."""
