"""Example plug-ins (docs/strategies.md); the tests load and train them end to end."""
