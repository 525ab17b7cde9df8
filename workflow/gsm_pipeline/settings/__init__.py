"""What each job reads, one module per kind of job: the config's sections a job needs, and the job settings
model the rule serialises into `--config` and the entry point validates back. Job code imports these modules,
never the pipeline config (`gsm_pipeline.config`), so an edit of the experiment matrix's code or descriptions
replans no job."""
