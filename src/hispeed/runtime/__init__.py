"""Running queries: tasks that read their sources, compute, and commit outputs with offsets."""
