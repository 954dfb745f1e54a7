"""The example queries the README shows and the scale benchmark times (one place, so they cannot drift apart)."""

from __future__ import annotations

#: The query every nightly run prints at its end.
NIGHTLY_EXAMPLE = "SELECT keyphrase, doc_freq FROM keyphrase_frequency ORDER BY doc_freq DESC, keyphrase LIMIT 5"

#: The query the ingest-problems artifact points to.
QUARANTINE_EXAMPLE = "SELECT file_name, record_id, reason FROM quarantine ORDER BY quarantine_id DESC"

#: README "SQL over keyphrases": what each query answers -> the query.
README_QUERIES: dict[str, str] = {
    "the most frequent keyphrases":
        "SELECT keyphrase, doc_freq FROM keyphrase_frequency ORDER BY doc_freq DESC LIMIT 20",
    "one document":
        "SELECT rank, keyphrase, score FROM document_keyphrases WHERE doc_id = 'pmid:33397041' ORDER BY rank",
    "papers about a topic, best first": "SELECT * FROM documents_for('machine learning') LIMIT 10",
    "what goes with it": "SELECT * FROM cooccurring('machine learning') LIMIT 10",
    "rising this year against last year":
        "SELECT keyphrase, recent_docs, before_docs, round(trend_ratio, 2) FROM trending_by_year(1) LIMIT 20",
    "a keyphrase over the years":
        "SELECT year, doc_freq FROM keyphrase_frequency_by_year WHERE normalized = 'covid-19' ORDER BY year",
    "provenance: which run, model, settings and precision produced a row":
        "SELECT k.keyphrase, r.model_version, r.precision, r.config, r.started_at FROM keyphrases k "
        "JOIN extraction_runs r USING (run_id) LIMIT 5",
}
