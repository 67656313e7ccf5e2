"""The results store."""
