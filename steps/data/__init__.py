"""Data engineering steps: ingest, validate, wrangle, label, derive features, split, profile."""

from steps.data.derive_features import derive_features
from steps.data.ingest_data import ingest_data
from steps.data.label_data import label_data
from steps.data.profile_data import profile_data
from steps.data.split_data import split_data
from steps.data.validate_data import validate_data
from steps.data.wrangle_data import wrangle_data

__all__ = [
    "derive_features",
    "ingest_data",
    "label_data",
    "profile_data",
    "split_data",
    "validate_data",
    "wrangle_data",
]
