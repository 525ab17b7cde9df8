"""Generation: the batched decoding loop, the crash-safe journal, sampling and its scores."""
