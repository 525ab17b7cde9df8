"""Both generation engines on the default model (SmolLM2-135M-Instruct, fetched as the DAG fetches it): the
GSM-style pair's test problems (16 of them, its prompt and 160-token budget, fp32 on the CPU) get the same greedy
completions, token counts and truncation flags from continuous batching as from the loop."""
import pytest

from gsm_pipeline.data import default_test_rows
from gsm_pipeline.generation.decoding import generate
from gsm_pipeline.model_io import load_model_and_tokenizer
from gsm_pipeline.prompts import render_prompt, stop_strings
from gsm_pipeline.settings.prompt import PromptSpec

pytestmark = pytest.mark.slow


def test_continuous_batching_gives_the_loops_greedy_completions_on_the_default_model(default_model):
    model, tokenizer = load_model_and_tokenizer(default_model / "model", "float32", padding_side="left")
    spec = PromptSpec()  # the GSM-style pair's prompt: tagged, chat template, on gsm_symbolic problems
    prompts = [render_prompt(r["question"], spec, tokenizer) for r in default_test_rows()[:16]]
    settings = dict(max_new_tokens=160, batch_size=16, stop_strings=stop_strings(spec), progress=False)
    loop = generate(model, tokenizer, prompts, engine="loop", **settings)
    continuous = generate(model, tokenizer, prompts, engine="continuous", **settings)
    differ = [i for i, (a, b) in enumerate(zip(continuous, loop)) if a != b]
    assert len(prompts) == 16 and not differ, [(continuous[i], loop[i]) for i in differ[:2]]
