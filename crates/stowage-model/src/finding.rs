//! Integrity findings: what a scan or an analysis found wrong, with the path and a message.
//!
//! Scan errors are data (ARCHITECTURE invariant 5): a scan collects findings and keeps going.
//! Kinds have stable snake_case names (they are part of the JSON schema); severities say
//! whether `stowage check` fails on them.

use std::borrow::Cow;
use std::fmt;

/// How bad a finding is.
#[derive(
    Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Leftovers that harm nothing (empty directories, stale temp files).
    Info,
    /// Something is inconsistent or could not be read; images may be affected.
    Warning,
    /// An image is broken or data does not match its digest.
    Error,
}

macro_rules! finding_kinds {
    ($($variant:ident => $name:literal, $sev:ident, $doc:literal;)*) => {
        /// What kind of problem a finding is. The string form is stable.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum FindingKind {
            $(#[doc = $doc] $variant,)*
        }

        impl FindingKind {
            pub const ALL: &'static [FindingKind] = &[$(FindingKind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self { $(FindingKind::$variant => $name,)* }
            }

            pub fn severity(self) -> Severity {
                match self { $(FindingKind::$variant => Severity::$sev,)* }
            }

            pub fn description(self) -> &'static str {
                match self { $(FindingKind::$variant => $doc,)* }
            }
        }
    };
}

finding_kinds! {
    IoError => "io_error", Warning, "A read, listing or stat failed; what lies below was not seen.";
    PermissionDenied => "permission_denied", Warning, "Permission denied; what lies below was not seen.";
    Vanished => "vanished", Warning, "A file or directory disappeared while it was being scanned.";
    Symlink => "symlink", Warning, "A symbolic link inside the storage; never followed.";
    NonUtf8Name => "non_utf8_name", Warning, "A file name that is not UTF-8; the registry cannot have written it.";
    UnexpectedFile => "unexpected_file", Warning, "A file the registry's layout does not have at this place.";
    UnexpectedDirectory => "unexpected_directory", Warning, "A directory the registry's layout does not have at this place.";
    InvalidName => "invalid_name", Warning, "A repository or tag name outside the registry's grammar.";
    LinkEmpty => "link_empty", Error, "An empty link file (a crash during a non-atomic write); the registry's GC aborts on it.";
    LinkInvalid => "link_invalid", Error, "A link file whose content is not a digest.";
    LinkMismatch => "link_mismatch", Warning, "A link file whose digest differs from the digest its path names.";
    LinkOversized => "link_oversized", Error, "A link file far larger than a digest; not read.";
    LinkDangling => "link_dangling", Warning, "A link to a blob that does not exist (normal after the registry's GC for _layers links).";
    AliasLink => "alias_link", Info, "A non-sha256 alias link in _layers; its content names the canonical blob.";
    TagWithoutCurrent => "tag_without_current", Warning, "A tag directory without current/link (listed by the API, resolves to nothing).";
    TagDangling => "tag_dangling", Error, "A tag whose current manifest blob does not exist: pulls of the tag fail.";
    TagUnlinked => "tag_unlinked", Error, "A tag whose current manifest has no revision link in the repository: the registry answers MANIFEST_UNKNOWN.";
    RevisionMissingBlob => "revision_missing_blob", Warning, "A manifest revision link whose blob does not exist.";
    ManifestUnparseable => "manifest_unparseable", Error, "A manifest blob that is not a manifest the registry can read; kept, with everything it might reference.";
    ManifestUnknownMediaType => "manifest_unknown_media_type", Warning, "A manifest with a media type the registry does not know; kept, with everything it might reference.";
    ManifestUnreadable => "manifest_unreadable", Error, "A manifest blob that could not be read; kept, with everything it might reference.";
    ReferenceMissing => "reference_missing", Error, "A manifest references a blob that does not exist: pulls of that image fail.";
    IndexChildUnlinked => "index_child_unlinked", Error, "An index child with no revision link in the index's repository: the registry answers MANIFEST_UNKNOWN for it.";
    LayerUnlinked => "layer_unlinked", Warning, "A manifest's config or layer has no _layers link in its repository: the registry answers BLOB_UNKNOWN through that repository.";
    BlobMissingData => "blob_missing_data", Warning, "A blob directory without its data file.";
    BlobMisplaced => "blob_misplaced", Warning, "Something under blobs/ outside the registry's exact layout (blobs/sha256/<2 hex>/<64 hex>/data, the fan-out the first two digits): never counted as a blob, nor as a copy of one.";
    NotARegularFile => "not_a_regular_file", Error, "A FIFO, socket, device or directory where the registry keeps a regular file: never opened, and nothing is deleted on its strength.";
    BlobSizeMismatch => "blob_size_mismatch", Error, "A blob whose size on disk differs from the size a manifest's descriptor gives it (truncated, emptied or replaced): pulls of it fail.";
    BlobDigestMismatch => "blob_digest_mismatch", Error, "Blob content does not hash to its digest (corruption).";
    EmptyDirectory => "empty_directory", Info, "An empty directory left behind by API deletes or GC.";
    StaleTempFile => "stale_temp_file", Info, "A *.tmp file from an interrupted atomic write (registry 3.1+).";
    UploadNoStartedAt => "upload_no_startedat", Warning, "An upload without startedat: the registry's purger never removes it.";
    UploadBadStartedAt => "upload_bad_startedat", Warning, "An upload whose startedat is not an RFC 3339 time.";
    LegacySignatures => "legacy_signatures", Info, "Schema 1 signature links from registries up to 2.3.";
    ForeignMetadata => "foreign_metadata", Info, "A '_'-prefixed directory the registry does not use (another tool's metadata); skipped.";
    CacheStateUnusable => "cache_state_unusable", Error, "The pull-through cache's scheduler-state.json is truncated, not JSON or not the registry's format: registry 2.8 in proxy mode does not start on it, and stowage evicts nothing on its strength.";
    CacheEntryWithoutObject => "cache_entry_without_object", Info, "A pull-through cache scheduler entry whose link (a _layers link for a blob, a revision link for a manifest) is not in its repository: the registry's expiry of it will fail harmlessly.";
    CacheObjectWithoutEntry => "cache_object_without_entry", Info, "A link of a pull-through cache that no scheduler entry expires (the state was lost or edited, or the object was not fetched through the proxy): it stays until a cache GC removes it.";
    MissingTagsDirectory => "missing_tags_directory", Info, "A repository with manifests but no _manifests/tags (pushed by digest only); the registry's GC --delete-untagged aborts on it.";
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem, at one path.
///
/// Registries that have been garbage-collected hold a dangling link per deleted image, so a
/// big one yields findings by the hundred thousand: the message is a `&'static str` whenever
/// the path already names what it is about, and owned strings are trimmed to their length.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    /// Path relative to the `docker/registry/v2` root ("" for the root itself).
    pub path: String,
    pub message: Cow<'static, str>,
}

impl Finding {
    pub fn new(
        kind: FindingKind,
        path: impl Into<String>,
        message: impl Into<Cow<'static, str>>,
    ) -> Finding {
        let mut path = path.into();
        path.shrink_to_fit();
        let mut message = message.into();
        if let Cow::Owned(m) = &mut message {
            m.shrink_to_fit();
        }
        Finding {
            kind,
            path,
            message,
        }
    }

    pub fn severity(&self) -> Severity {
        self.kind.severity()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} [{}] {}: {}",
            self.severity(),
            self.kind,
            self.path,
            self.message
        )
    }
}

/// Findings counted by severity, for commands that print only totals.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct FindingCounts {
    pub error: u64,
    pub warning: u64,
    pub info: u64,
}

impl FindingCounts {
    pub fn add(&mut self, kind: FindingKind) {
        match kind.severity() {
            Severity::Error => self.error += 1,
            Severity::Warning => self.warning += 1,
            Severity::Info => self.info += 1,
        }
    }

    pub fn of(findings: &[Finding]) -> FindingCounts {
        let mut c = FindingCounts::default();
        findings.iter().for_each(|f| c.add(f.kind));
        c
    }

    pub fn total(&self) -> u64 {
        self.error + self.warning + self.info
    }
}

impl std::ops::AddAssign for FindingCounts {
    fn add_assign(&mut self, o: FindingCounts) {
        self.error += o.error;
        self.warning += o.warning;
        self.info += o.info;
    }
}
