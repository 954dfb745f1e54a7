-- Annotations the nightly writes beside keyphrases, one table per kind of output: chemical / disease mentions
-- (`entities`, model kind `ner`) and suggested MeSH descriptors (`doc_labels`, model kind `classify`).
-- Offsets index the text every model sees: kpe.extract.methods.document_text(title, abstract), the title and
-- the abstract joined as one passage (`document_text` below builds the same string in SQL).

CREATE TABLE entities (
    doc_id         VARCHAR NOT NULL,
    start_char     INTEGER NOT NULL,             -- text[start_char:end_char] = entity (Python / 0-based)
    end_char       INTEGER NOT NULL,
    entity         VARCHAR NOT NULL,             -- the surface text
    type           VARCHAR NOT NULL,             -- Chemical | Disease
    score          DOUBLE NOT NULL,              -- mean probability of its words' tags
    model_version  VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,             -- the document text the entities were found in
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (doc_id, start_char)
);

CREATE TABLE doc_labels (
    doc_id         VARCHAR NOT NULL,
    scheme         VARCHAR NOT NULL,             -- mesh
    label          VARCHAR NOT NULL,
    score          DOUBLE NOT NULL,
    rank           INTEGER NOT NULL,
    model_version  VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (doc_id, scheme, rank)
);

-- What each document was last annotated from, per kind (also when a document yielded no row), like
-- extraction_state for keyphrases: a document is pending for a kind when its text or the kind's production
-- model changed.
CREATE TABLE annotation_state (
    kind           VARCHAR NOT NULL,             -- ner | classify
    doc_id         VARCHAR NOT NULL,
    content_hash   VARCHAR NOT NULL,
    model_version  VARCHAR NOT NULL,
    run_id         VARCHAR NOT NULL,
    n_rows         INTEGER NOT NULL,
    annotated_at   TIMESTAMP NOT NULL,
    PRIMARY KEY (kind, doc_id)
);

-- One row per nightly run and kind: the model it used and what it wrote (run_id = the nightly's run id).
CREATE TABLE annotation_runs (
    run_id         VARCHAR NOT NULL,
    kind           VARCHAR NOT NULL,
    output         VARCHAR NOT NULL,             -- entities | doc_labels
    model_version  VARCHAR NOT NULL,
    started_at     TIMESTAMP NOT NULL,
    finished_at    TIMESTAMP,
    status         VARCHAR NOT NULL,             -- running | completed | interrupted
    n_docs         BIGINT NOT NULL DEFAULT 0,
    n_rows         BIGINT NOT NULL DEFAULT 0,
    n_removed      BIGINT NOT NULL DEFAULT 0,
    seconds        DOUBLE,
    PRIMARY KEY (run_id, kind)
);

-- The text models see, as kpe.extract.methods.document_text builds it (title and abstract are stored trimmed).
CREATE OR REPLACE VIEW document_text AS
SELECT doc_id,
       CASE WHEN coalesce(title, '') <> '' AND coalesce(abstract, '') <> ''
            THEN title || (CASE WHEN right(title, 1) IN ('.', '?', '!', ':') THEN ' ' ELSE '. ' END) || abstract
            ELSE coalesce(nullif(title, ''), abstract, '') END AS text
FROM documents;

-- Entities with their document's title, year, journal and source (current documents only).
CREATE OR REPLACE VIEW document_entities AS
SELECT e.doc_id, d.title, d.year, d.journal, d.source, d.pmid, d.doi,
       e.start_char, e.end_char, e.entity, lower(e.entity) AS entity_lower, e.type, e.score,
       e.model_version, e.run_id, e.created_at
FROM entities e JOIN documents d USING (doc_id)
WHERE NOT d.deleted;

-- Documents mentioning an entity (case-insensitive), most mentions first.
CREATE OR REPLACE MACRO documents_with_entity(name) AS TABLE
SELECT doc_id, any_value(title) AS title, any_value(year) AS year, any_value(journal) AS journal,
       any_value(type) AS type, count(*) AS mentions, max(score) AS best_score
FROM document_entities
WHERE entity_lower = lower(name)
GROUP BY doc_id
ORDER BY mentions DESC, best_score DESC, doc_id;

-- Document frequency of each entity (lower-cased) per type and publication year, ranked within the year.
CREATE OR REPLACE VIEW entity_frequency_by_year AS
SELECT year, type, entity_lower, mode(entity) AS entity, count(DISTINCT doc_id) AS n_docs,
       row_number() OVER (PARTITION BY year, type ORDER BY count(DISTINCT doc_id) DESC, entity_lower) AS rank
FROM document_entities
WHERE year IS NOT NULL
GROUP BY year, type, entity_lower;

-- The ten most frequent chemicals and diseases of every publication year.
CREATE OR REPLACE VIEW top_entities_by_year AS
SELECT year, type, rank, entity, n_docs FROM entity_frequency_by_year WHERE rank <= 10;

-- Every chemical-disease pair mentioned in the same document (lower-cased), with the document's title and year.
CREATE OR REPLACE VIEW chemical_disease_pairs AS
SELECT c.doc_id, c.title, c.year, c.entity_lower AS chemical, d.entity_lower AS disease
FROM (SELECT DISTINCT doc_id, title, year, entity_lower FROM document_entities WHERE type = 'Chemical') c
JOIN (SELECT DISTINCT doc_id, entity_lower FROM document_entities WHERE type = 'Disease') d USING (doc_id);

-- Chemical-disease pairs by the number of documents that mention both.
CREATE OR REPLACE VIEW chemical_disease_cooccurrence AS
SELECT chemical, disease, count(DISTINCT doc_id) AS n_docs
FROM chemical_disease_pairs
GROUP BY chemical, disease;

-- Suggested labels with their document, and whether the indexers assigned the same MeSH descriptor since
-- (`indexed` is NULL while the document has no MeSH).
CREATE OR REPLACE VIEW mesh_suggestions AS
SELECT l.doc_id, dd.title, dd.year, dd.journal, dd.pmid, l.rank, l.label, l.score, l.model_version, l.run_id,
       l.created_at,
       CASE WHEN coalesce(len(dd.mesh), 0) = 0 THEN NULL
            ELSE list_contains([m.name FOR m IN dd.mesh], l.label) END AS indexed
FROM doc_labels l JOIN documents dd USING (doc_id)
WHERE l.scheme = 'mesh' AND NOT dd.deleted;

-- Per document that has both: how many suggestions the indexers confirmed.
CREATE OR REPLACE VIEW mesh_suggestions_vs_indexed AS
SELECT s.doc_id, any_value(s.title) AS title, count(*) AS suggested,
       count(*) FILTER (WHERE s.indexed) AS confirmed, any_value(len(d.mesh)) AS indexed_headings
FROM mesh_suggestions s JOIN documents d USING (doc_id)
WHERE s.indexed IS NOT NULL
GROUP BY s.doc_id;
