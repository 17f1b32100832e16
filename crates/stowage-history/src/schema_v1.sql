-- stowage history database, schema version 1 (PRAGMA user_version = 1).
-- Documented in docs/history.md. Times are RFC 3339 UTC text (and Unix seconds where ordered
-- on); sizes are bytes.

-- One row per recorded scan.
CREATE TABLE snapshot (
  id                       INTEGER PRIMARY KEY,
  taken_at                 TEXT    NOT NULL,
  taken_at_unix            INTEGER NOT NULL,
  storage                  TEXT    NOT NULL,
  blobs                    INTEGER NOT NULL,
  blob_bytes               INTEGER NOT NULL,
  referenced_bytes         INTEGER NOT NULL,
  unreferenced_bytes       INTEGER NOT NULL,
  untagged_exclusive_bytes INTEGER NOT NULL,
  upload_bytes             INTEGER NOT NULL,
  repositories             INTEGER NOT NULL,
  tags                     INTEGER NOT NULL,
  manifests                INTEGER NOT NULL,
  untagged_manifests       INTEGER NOT NULL,
  findings_error           INTEGER NOT NULL,
  findings_warning         INTEGER NOT NULL,
  findings_info            INTEGER NOT NULL
);
CREATE INDEX snapshot_taken_at ON snapshot (taken_at_unix);

-- Per repository and snapshot: the repository alone (nested repositories apart).
CREATE TABLE repository (
  snapshot_id        INTEGER NOT NULL REFERENCES snapshot (id) ON DELETE CASCADE,
  name               TEXT    NOT NULL,
  total_bytes        INTEGER NOT NULL,
  exclusive_bytes    INTEGER NOT NULL,
  tags               INTEGER NOT NULL,
  manifests          INTEGER NOT NULL,
  untagged_manifests INTEGER NOT NULL,
  upload_bytes       INTEGER NOT NULL,
  PRIMARY KEY (snapshot_id, name)
) WITHOUT ROWID;

-- Per tag and snapshot.
CREATE TABLE tag (
  snapshot_id     INTEGER NOT NULL REFERENCES snapshot (id) ON DELETE CASCADE,
  repository      TEXT    NOT NULL,
  tag             TEXT    NOT NULL,
  digest          TEXT,
  total_bytes     INTEGER NOT NULL,
  exclusive_bytes INTEGER NOT NULL,
  moved_at        TEXT,
  PRIMARY KEY (snapshot_id, repository, tag)
) WITHOUT ROWID;

-- Every blob ever seen: when first seen, and the last snapshot that still saw it.
CREATE TABLE blob (
  digest              TEXT    NOT NULL PRIMARY KEY,
  size                INTEGER NOT NULL,
  modified_at         TEXT    NOT NULL,
  first_seen_snapshot INTEGER NOT NULL REFERENCES snapshot (id) ON DELETE CASCADE,
  first_seen_at       TEXT    NOT NULL,
  last_seen_snapshot  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX blob_first_seen ON blob (first_seen_snapshot);
