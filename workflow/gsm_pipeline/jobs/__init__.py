"""The job entry points (`python -m gsm_pipeline.jobs.<name>`): each parses its typed settings, runs, and
writes its files."""
