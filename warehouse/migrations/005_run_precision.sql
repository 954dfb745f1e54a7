-- Provenance: the numeric precision and device an extraction run computed in (keyphrases computed in bf16 and
-- fp32 can differ in near-ties), and how many of its documents were re-extractions (the budgeted backfill).
ALTER TABLE extraction_runs ADD COLUMN precision VARCHAR;
ALTER TABLE extraction_runs ADD COLUMN device VARCHAR;
ALTER TABLE extraction_runs ADD COLUMN n_backfill BIGINT DEFAULT 0;
