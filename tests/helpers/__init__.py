"""What the test tiers share that is not a fixture: plain functions, classes and constants (fixtures live
in the conftest.py files); no test module imports another."""
