"""Answers and grading: numbers, the answer-format registry, grading, GRPO rewards, and the statistics
of graded rows."""
