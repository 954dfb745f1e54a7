-- Ingestion: current documents, their aliases, the file watermark, shards, deletions, quarantine.
CREATE SEQUENCE IF NOT EXISTS ingest_file_seq START 1;
CREATE SEQUENCE IF NOT EXISTS quarantine_seq START 1;

CREATE TABLE documents (
    doc_id            VARCHAR PRIMARY KEY,
    source            VARCHAR NOT NULL,          -- source of the text fields: pubmed | s2
    source_id         VARCHAR NOT NULL,
    sources           VARCHAR[] NOT NULL,        -- every source that contributed
    aliases           VARCHAR[] NOT NULL,        -- pmid:N, doi:x, s2:N, pmcid:x, ...
    title             VARCHAR,
    abstract          VARCHAR,
    version           INTEGER,
    language          VARCHAR,
    journal           VARCHAR,
    year              INTEGER,
    pub_date          VARCHAR,
    doi               VARCHAR,
    pmid              VARCHAR,
    keywords          VARCHAR[],
    mesh              STRUCT(name VARCHAR, major BOOLEAN)[],
    publication_types VARCHAR[],
    content_hash      VARCHAR NOT NULL,
    first_seen        TIMESTAMP NOT NULL,
    updated_at        TIMESTAMP NOT NULL,
    deleted           BOOLEAN NOT NULL DEFAULT FALSE,
    deleted_at        TIMESTAMP,
    last_file_id      BIGINT
);

CREATE TABLE doc_aliases (
    alias  VARCHAR PRIMARY KEY,
    doc_id VARCHAR NOT NULL
);

CREATE TABLE ingest_files (
    file_id        BIGINT PRIMARY KEY DEFAULT nextval('ingest_file_seq'),
    source         VARCHAR NOT NULL,
    name           VARCHAR NOT NULL,             -- base name, e.g. pubmed21n1298.xml.gz
    uri            VARCHAR NOT NULL,             -- path or URL it was read from
    sha256         VARCHAR NOT NULL,
    bytes          BIGINT,
    status         VARCHAR NOT NULL,             -- running | done | partial | failed
    records_done   BIGINT NOT NULL DEFAULT 0,    -- source items committed (resume point)
    batches_done   INTEGER NOT NULL DEFAULT 0,
    n_records      BIGINT NOT NULL DEFAULT 0,
    n_new          BIGINT NOT NULL DEFAULT 0,
    n_updated      BIGINT NOT NULL DEFAULT 0,
    n_unchanged    BIGINT NOT NULL DEFAULT 0,
    n_deleted      BIGINT NOT NULL DEFAULT 0,
    n_quarantined  BIGINT NOT NULL DEFAULT 0,
    error          VARCHAR,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    seconds        DOUBLE,
    UNIQUE (name, sha256)
);

CREATE TABLE shards (
    path         VARCHAR PRIMARY KEY,            -- relative to the lake root
    file_id      BIGINT NOT NULL,
    batch        INTEGER NOT NULL,
    kind         VARCHAR NOT NULL,               -- documents | deletions
    source       VARCHAR NOT NULL,
    ingest_date  DATE NOT NULL,
    rows         BIGINT NOT NULL,
    bytes        BIGINT NOT NULL,
    sha256       VARCHAR NOT NULL,
    created_at   TIMESTAMP NOT NULL
);

CREATE TABLE deletions (
    source      VARCHAR NOT NULL,
    source_id   VARCHAR NOT NULL,
    doc_id      VARCHAR,                         -- NULL when the record was never ingested
    file_id     BIGINT NOT NULL,
    deleted_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (source, source_id, file_id)
);

CREATE TABLE quarantine (
    quarantine_id BIGINT PRIMARY KEY DEFAULT nextval('quarantine_seq'),
    source        VARCHAR NOT NULL,
    file_id       BIGINT,
    file_name     VARCHAR,
    record_id     VARCHAR,
    reason        VARCHAR NOT NULL,
    raw_snippet   VARCHAR,
    created_at    TIMESTAMP NOT NULL
);
