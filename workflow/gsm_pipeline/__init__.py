"""GSM8K post-training pipeline: data, SFT and GRPO through TRL, evaluation, report."""
__version__ = "0.1.0"
