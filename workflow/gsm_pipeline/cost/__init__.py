"""What a config's plan costs before it runs: tokens, GPU time, GPU-hours and memory per job (`gsm-pipeline cost`)."""
