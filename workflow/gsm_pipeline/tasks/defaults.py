"""What a task gets unless its module says otherwise: each answer format's own instruction, two worked
examples for few-shot prompts. Grading is answers.grade unless the task module brings its own `grade`."""
from __future__ import annotations

INSTRUCTIONS: dict[str, str] = {}  # per answer format, overriding formats.FORMATS' instruction
# Written for this project (not taken from any test set): used by prompts with shots > 0.
EXEMPLARS = [
    {"question": "A baker makes 24 muffins and sells them in boxes of 4. Each box costs $3. How much money "
                 "does the baker make by selling all the muffins?",
     "reasoning": "24 muffins / 4 per box = 6 boxes. 6 boxes * $3 = $18.", "answer": "18"},
    {"question": "Tom reads 15 pages on Monday and twice as many on Tuesday. How many pages did he read "
                 "in the two days?",
     "reasoning": "On Tuesday he read 15 * 2 = 30 pages. Together 15 + 30 = 45 pages.", "answer": "45"},
]
SOCRATIC = False  # whether load() can attach GSM8K-style socratic reasoning (experiments' train_data)


def input_files(cfg, socratic: bool) -> list[str]:
    """Local files load() reads: inputs of prepare_data, so editing one reruns it."""
    return []
