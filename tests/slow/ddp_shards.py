"""Run under `accelerate launch`: build the real SFT trainer and record which rows this rank's
dataloader yields in the first epoch (the DDP test checks the ranks' shards are disjoint)."""
import json
import sys
from pathlib import Path

from gsm_pipeline.jobs.train_sft import build_trainer
from gsm_pipeline.runtime import seed_everything
from gsm_pipeline.settings.training import SFTJob

job, parent, data, out = SFTJob.parse(sys.argv[1]), sys.argv[2], sys.argv[3], Path(sys.argv[4])
seed_everything(job.seed)
trainer, tokenizer = build_trainer(job, parent, data, out / "checkpoints")
rank = trainer.accelerator.process_index
seen = [tokenizer.decode([t for t in row if t != tokenizer.pad_token_id])
        for batch in trainer.get_train_dataloader() for row in batch["input_ids"].tolist()]
(out / f"rank{rank}.json").write_text(json.dumps({"world": trainer.accelerator.num_processes, "rows": seen}))
