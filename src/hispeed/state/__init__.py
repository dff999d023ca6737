"""State stores: what stateful operators keep between batches, with changelog and restore."""
