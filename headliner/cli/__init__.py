"""The command line (`python run.py ...`): one module per command group, each calling a library function."""
