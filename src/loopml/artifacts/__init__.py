"""Artifact storage: content-addressed, verified bytes behind fsspec."""
