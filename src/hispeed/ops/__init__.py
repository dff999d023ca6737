"""Physical operators over Arrow batches."""
