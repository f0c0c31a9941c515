"""pay service."""
