"""The `hispeed` command."""
