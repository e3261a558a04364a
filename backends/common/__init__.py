"""Helpers every model family shares: seeding, devices and dtypes, safe weight loading."""
