-- stowage history database, schema version 3: pull-data coverage with gaps. Documented in
-- docs/history.md and docs/usage.md.

-- The UTC days on which a source delivered data (any log line, any notification event),
-- with the first and last time seen that day. Coverage is the run of consecutive days that
-- ends with the newest one: a day without data is a gap, so an event dated long ago (a
-- forged one, or a stray old log line) covers its own day only, never the time in between.
CREATE TABLE usage_day (
  kind        TEXT    NOT NULL,             -- logs | notifications
  day         INTEGER NOT NULL,             -- days since 1970-01-01 (UTC)
  first_ns    INTEGER NOT NULL,
  last_ns     INTEGER NOT NULL,
  PRIMARY KEY (kind, day)
) WITHOUT ROWID;

-- Days of a version-2 database, from the events it recorded (its other log lines' days were
-- not kept: coverage may have more gaps than the logs had).
INSERT INTO usage_day (kind, day, first_ns, last_ns)
  SELECT CASE source WHEN 'notification' THEN 'notifications' ELSE 'logs' END,
         (at_ns - ((at_ns % 86400000000000) + 86400000000000) % 86400000000000) / 86400000000000,
         min(at_ns), max(at_ns)
  FROM usage_event GROUP BY 1, 2;

-- Events or lines dated outside what a source can have sent (before the receiver started,
-- minus the allowed clock skew, or in the future beyond it): not recorded, counted here.
CREATE TABLE usage_rejected (
  kind        TEXT    NOT NULL PRIMARY KEY, -- logs | notifications
  rejected    INTEGER NOT NULL
) WITHOUT ROWID;
ALTER TABLE usage_ingest ADD COLUMN rejected INTEGER NOT NULL DEFAULT 0;

-- Log lines longer than the ingest's limit (64 KiB), skipped without being buffered.
ALTER TABLE usage_ingest ADD COLUMN too_long INTEGER NOT NULL DEFAULT 0;
