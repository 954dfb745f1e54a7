-- Nightly extraction: current keyphrases, superseded history, per-document state and runs.
CREATE TABLE extraction_runs (
    run_id         VARCHAR PRIMARY KEY,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    status         VARCHAR NOT NULL,             -- running | completed | failed
    model_version  VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,
    config_hash    VARCHAR NOT NULL,
    config         JSON NOT NULL,
    n_selected     BIGINT NOT NULL DEFAULT 0,
    n_docs         BIGINT NOT NULL DEFAULT 0,
    n_keyphrases   BIGINT NOT NULL DEFAULT 0,
    n_removed      BIGINT NOT NULL DEFAULT 0,
    seconds        DOUBLE,
    stage_seconds  JSON,
    error          VARCHAR
);

CREATE TABLE keyphrases (
    doc_id         VARCHAR NOT NULL,
    rank           INTEGER NOT NULL,
    keyphrase      VARCHAR NOT NULL,
    normalized     VARCHAR NOT NULL,             -- lowercased Porter-stemmed tokens
    score          DOUBLE NOT NULL,
    method         VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    config_hash    VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,             -- the document text the phrases were extracted from
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (doc_id, rank)
);

-- Keyphrases that were current once: replaced by a re-extraction or removed with their document.
CREATE TABLE keyphrases_history (
    doc_id         VARCHAR NOT NULL,
    rank           INTEGER NOT NULL,
    keyphrase      VARCHAR NOT NULL,
    normalized     VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    method         VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    config_hash    VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    superseded_at  TIMESTAMP NOT NULL,
    superseded_by  VARCHAR NOT NULL,             -- run id that replaced or removed them
    reason         VARCHAR NOT NULL              -- changed | deleted | model | config
);

-- What each document was last extracted from (also for documents that yielded no phrase).
CREATE TABLE extraction_state (
    doc_id         VARCHAR PRIMARY KEY,
    content_hash   VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    config_hash    VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    n_keyphrases   INTEGER NOT NULL,
    extracted_at   TIMESTAMP NOT NULL
);
