-- Views and table macros for the questions users ask of the keyphrases.

-- One document's keyphrases with its title, year, journal and source.
CREATE OR REPLACE VIEW document_keyphrases AS
SELECT k.doc_id, d.title, d.year, d.journal, d.source, d.pmid, d.doi,
       k.rank, k.keyphrase, k.normalized, k.score, k.method, k.model_version, k.config_hash, k.run_id, k.created_at
FROM keyphrases k JOIN documents d USING (doc_id)
WHERE NOT d.deleted;

-- Document frequency of each keyphrase (grouped by its normalized form; the most common surface form shown).
CREATE OR REPLACE VIEW keyphrase_frequency AS
SELECT normalized, mode(keyphrase) AS keyphrase, count(DISTINCT doc_id) AS doc_freq, avg(score) AS mean_score
FROM document_keyphrases
GROUP BY normalized;

-- Document frequency of each keyphrase per publication year.
CREATE OR REPLACE VIEW keyphrase_frequency_by_year AS
SELECT normalized, year, mode(keyphrase) AS keyphrase, count(DISTINCT doc_id) AS doc_freq
FROM document_keyphrases
WHERE year IS NOT NULL
GROUP BY normalized, year;

-- Every document a keyphrase was extracted for.
CREATE OR REPLACE VIEW keyphrase_documents AS
SELECT normalized, keyphrase, doc_id, title, year, journal, source, rank, score
FROM document_keyphrases;

-- Pairs of keyphrases extracted for the same document (a < b), with the number of shared documents.
CREATE OR REPLACE VIEW keyphrase_cooccurrence AS
SELECT a.normalized AS phrase_a, b.normalized AS phrase_b, count(DISTINCT a.doc_id) AS n_docs
FROM keyphrases a JOIN keyphrases b ON a.doc_id = b.doc_id AND a.normalized < b.normalized
JOIN documents d ON d.doc_id = a.doc_id AND NOT d.deleted
GROUP BY ALL;

-- Documents for a keyphrase: matches the surface form case-insensitively or the normalized (stemmed) form.
CREATE OR REPLACE MACRO documents_for(phrase) AS TABLE
SELECT doc_id, title, year, journal, source, keyphrase, rank, score
FROM document_keyphrases
WHERE lower(keyphrase) = lower(phrase) OR normalized = lower(phrase)
ORDER BY score DESC;

-- Keyphrases that co-occur with a given one (surface or normalized form), most shared documents first.
CREATE OR REPLACE MACRO cooccurring(phrase) AS TABLE
WITH target AS (
    SELECT DISTINCT doc_id FROM keyphrases WHERE lower(keyphrase) = lower(phrase) OR normalized = lower(phrase)
)
SELECT k.normalized, mode(k.keyphrase) AS keyphrase, count(DISTINCT k.doc_id) AS n_docs
FROM keyphrases k JOIN target USING (doc_id)
WHERE NOT (lower(k.keyphrase) = lower(phrase) OR k.normalized = lower(phrase))
GROUP BY k.normalized
ORDER BY n_docs DESC, k.normalized;

-- Trending by publication year: share of documents in the last `recent_years` years against the same span before.
CREATE OR REPLACE MACRO trending_by_year(recent_years := 1, min_docs := 3) AS TABLE
WITH bounds AS (SELECT max(year) AS last_year FROM documents WHERE NOT deleted AND year IS NOT NULL),
docs AS (
    SELECT d.doc_id,
           CASE WHEN d.year > b.last_year - recent_years THEN 'recent'
                WHEN d.year > b.last_year - 2 * recent_years THEN 'before' END AS period
    FROM documents d, bounds b
    WHERE NOT d.deleted AND d.doc_id IN (SELECT doc_id FROM keyphrases)
),
totals AS (SELECT period, count(*) AS n FROM docs WHERE period IS NOT NULL GROUP BY period),
counts AS (
    SELECT k.normalized, mode(k.keyphrase) AS keyphrase,
           count(DISTINCT k.doc_id) FILTER (WHERE d.period = 'recent') AS recent_docs,
           count(DISTINCT k.doc_id) FILTER (WHERE d.period = 'before') AS before_docs
    FROM keyphrases k JOIN docs d USING (doc_id)
    WHERE d.period IS NOT NULL
    GROUP BY k.normalized
)
SELECT c.normalized, c.keyphrase, c.recent_docs, c.before_docs,
       (c.recent_docs + 1.0) / (coalesce(t.recent_n, 0) + 1.0) AS recent_share,
       (c.before_docs + 1.0) / (coalesce(t.before_n, 0) + 1.0) AS before_share,
       recent_share / before_share AS trend_ratio
FROM counts c,
     (SELECT sum(n) FILTER (WHERE period = 'recent') AS recent_n, sum(n) FILTER (WHERE period = 'before') AS before_n
      FROM totals) t
WHERE c.recent_docs >= min_docs
ORDER BY trend_ratio DESC, c.recent_docs DESC;

-- Trending by ingestion date: documents first seen in the last `recent_days` days against the same span before.
CREATE OR REPLACE MACRO trending_by_ingest(recent_days := 7, min_docs := 3) AS TABLE
WITH bounds AS (SELECT max(first_seen) AS last_seen FROM documents WHERE NOT deleted),
docs AS (
    SELECT d.doc_id,
           CASE WHEN d.first_seen > b.last_seen - to_days(recent_days) THEN 'recent'
                WHEN d.first_seen > b.last_seen - to_days(2 * recent_days) THEN 'before' END AS period
    FROM documents d, bounds b
    WHERE NOT d.deleted
),
totals AS (SELECT period, count(*) AS n FROM docs WHERE period IS NOT NULL GROUP BY period),
counts AS (
    SELECT k.normalized, mode(k.keyphrase) AS keyphrase,
           count(DISTINCT k.doc_id) FILTER (WHERE d.period = 'recent') AS recent_docs,
           count(DISTINCT k.doc_id) FILTER (WHERE d.period = 'before') AS before_docs
    FROM keyphrases k JOIN docs d USING (doc_id)
    WHERE d.period IS NOT NULL
    GROUP BY k.normalized
)
SELECT c.normalized, c.keyphrase, c.recent_docs, c.before_docs,
       (c.recent_docs + 1.0) / (coalesce(t.recent_n, 0) + 1.0) AS recent_share,
       (c.before_docs + 1.0) / (coalesce(t.before_n, 0) + 1.0) AS before_share,
       recent_share / before_share AS trend_ratio
FROM counts c,
     (SELECT sum(n) FILTER (WHERE period = 'recent') AS recent_n, sum(n) FILTER (WHERE period = 'before') AS before_n
      FROM totals) t
WHERE c.recent_docs >= min_docs
ORDER BY trend_ratio DESC, c.recent_docs DESC;
