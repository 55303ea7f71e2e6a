"""Data engineering: sources and generators, validation, wrangling, labels and splits."""
