"""From a SELECT to a plan: names and types checked, expressions compiled, the sink's schema."""
