"""promote package."""
