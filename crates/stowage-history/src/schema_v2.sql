-- stowage history database, schema version 2: pull data ("usage"). Documented in
-- docs/history.md and docs/usage.md. Times: `*_ns` are Unix nanoseconds (ordered on), `at`
-- columns are RFC 3339 UTC text for people.

-- Every manifest request or notification event recorded, once: `key` is a stable hash of the
-- request (its request id where the source has one, else the log line and its occurrence),
-- so ingesting the same lines or receiving the same event again adds nothing.
CREATE TABLE usage_event (
  id          INTEGER PRIMARY KEY,
  key         BLOB    NOT NULL UNIQUE,
  at_ns       INTEGER NOT NULL,
  at          TEXT    NOT NULL,
  action      TEXT    NOT NULL,            -- pull | push | delete
  method      TEXT,                        -- GET | HEAD | PUT | DELETE
  repository  TEXT    NOT NULL,
  reference   TEXT    NOT NULL,            -- as requested: a tag or a digest
  digest      TEXT,                        -- the manifest digest; NULL = tag not resolved
  unresolved  TEXT,                        -- why the tag was not resolved
  status      INTEGER,
  user_agent  TEXT,
  remote_addr TEXT,
  user_name   TEXT,
  ignored     TEXT,                        -- the filter that excluded it (scanner, address); NULL = counted
  source      TEXT    NOT NULL,            -- log:text | log:json | log:combined | log:gitlab | notification
  ingest_id   INTEGER                      -- usage_ingest.id for log lines
);
CREATE INDEX usage_event_target ON usage_event (repository, digest, at_ns);

-- Counted pulls (not ignored, digest known) per repository, manifest digest and UTC day.
CREATE TABLE usage_daily (
  repository  TEXT    NOT NULL,
  digest      TEXT    NOT NULL,
  day         TEXT    NOT NULL,            -- YYYY-MM-DD (UTC)
  pulls       INTEGER NOT NULL,            -- GET and HEAD
  head_pulls  INTEGER NOT NULL,            -- of which HEAD
  first_ns    INTEGER NOT NULL,
  last_ns     INTEGER NOT NULL,
  PRIMARY KEY (repository, digest, day)
) WITHOUT ROWID;

-- What each source covers: data begins with the earliest time any source saw (a log line of
-- any kind, or an event), and ends with the latest.
CREATE TABLE usage_source (
  kind        TEXT    NOT NULL PRIMARY KEY, -- logs | notifications
  first_ns    INTEGER NOT NULL,
  last_ns     INTEGER NOT NULL,
  received    INTEGER NOT NULL,             -- lines read or events received
  recorded    INTEGER NOT NULL,
  duplicates  INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per `stowage usage ingest` run: its bookkeeping.
CREATE TABLE usage_ingest (
  id              INTEGER PRIMARY KEY,
  ingested_at     TEXT    NOT NULL,
  inputs          TEXT    NOT NULL,
  lines_read      INTEGER NOT NULL,
  requests        INTEGER NOT NULL,         -- access-log lines (any request)
  manifest_events INTEGER NOT NULL,         -- manifest GET/HEAD/PUT/DELETE among them, any status
  recorded        INTEGER NOT NULL,
  duplicates      INTEGER NOT NULL,
  ignored         INTEGER NOT NULL,         -- recorded, but excluded from pull counts by a filter
  unresolved      INTEGER NOT NULL,         -- tag pulls whose digest is unknown
  unparseable     INTEGER NOT NULL,
  other_lines     INTEGER NOT NULL,         -- parseable, but not a request (start-up, errors, ...)
  first_ns        INTEGER,
  last_ns         INTEGER
);
