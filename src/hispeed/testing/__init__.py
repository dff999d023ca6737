"""Helpers that hispeed's tests share (and that users' tests may use too)."""
