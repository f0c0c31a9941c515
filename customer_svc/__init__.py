"""customer service."""
