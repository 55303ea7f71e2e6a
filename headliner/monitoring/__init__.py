"""Monitoring a served model: the window of its inference log, drift, data quality, fairness and live
performance, the verdict and the retraining loop, and simulated traffic to watch it work."""
