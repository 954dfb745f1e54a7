-- Model registry and evaluation results.
CREATE SEQUENCE IF NOT EXISTS evaluation_seq START 1;

CREATE TABLE models (
    version       VARCHAR PRIMARY KEY,
    path          VARCHAR NOT NULL,
    base_model    VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,              -- tagger | joint | mlm | encoder
    method        VARCHAR NOT NULL,              -- extraction method production uses with it
    data          JSON,
    settings      JSON,
    metrics       JSON,
    decision      JSON,
    status        VARCHAR NOT NULL,              -- candidate | production | rejected | retired
    created_at    TIMESTAMP NOT NULL,
    promoted_at   TIMESTAMP,
    retired_at    TIMESTAMP
);

CREATE TABLE evaluations (
    evaluation_id  BIGINT PRIMARY KEY DEFAULT nextval('evaluation_seq'),
    dataset        VARCHAR NOT NULL,
    split          VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    config_hash    VARCHAR NOT NULL,
    n_docs         BIGINT NOT NULL,
    metrics        JSON NOT NULL,
    seconds        DOUBLE NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    flow_run_id    VARCHAR
);
