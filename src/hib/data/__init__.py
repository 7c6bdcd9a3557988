"""Corpora and loaders: Speech Commands (real or synthesized, same layout) for keyword spotting."""
