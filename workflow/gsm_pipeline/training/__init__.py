"""Training: trainer arguments, checkpoints and saving, and the TRL config fields a stage may set."""
