//! The policy file: what an operator writes (YAML), as typed data.
//!
//! The grammar follows `shared/spec/retention.md` §5 (documented for users in
//! `docs/retention.md`; JSON Schema in `docs/policy.schema.json`, generated from these types).
//! Every struct denies unknown fields: a typo (`olderthan:`) is an error, never a rule that
//! silently matches nothing. Values that need checking beyond their shape (patterns, durations,
//! byte sizes, references) are kept as strings here and compiled by [`crate::compile`], which
//! reports every problem with the rule it belongs to.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A retention policy file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// `retention.v1`.
    #[serde(rename = "apiVersion")]
    pub api_version: String,
    /// `RetentionPolicy`.
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub settings: Settings,
    #[serde(default)]
    pub protections: Protections,
    /// A pull-through cache's size cap (`crate::cache`); the file's `policies` are then `[]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache: Option<crate::cache::CacheRule>,
    /// At least one (none with a `cache` rule). Every policy whose scope matches a repository
    /// contributes; none is first.
    pub policies: Vec<Policy>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// Which timestamp means "age" and orders `last: N` / calendar buckets.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// When the tag was last created or moved (its `current` link); promotion counts as fresh.
    /// For an untagged image: when it was pushed.
    TagUpdated,
    /// When this digest was linked into the repository (its revision link; a re-push of the
    /// same digest refreshes it).
    Pushed,
    /// The image config's `created` (newest platform for an index). A hint only: reproducible
    /// builds say 1970, and a re-pushed old build looks ancient.
    Created,
    /// Last pull, from `settings.pull_sources` (an image never seen pulled has no time: kept).
    Pulled,
    /// The build date read from the image (`stowage_model::build`): the config's `created`,
    /// else its newest dated build step; a placeholder (before 2013: reproducible builds'
    /// 1970 or 1980), a date in the future, or an unreadable config has no time
    /// (`missing_time` decides). Unlike `pushed` and `tag_updated` it survives a copy of the
    /// storage (`cp -a`, rsync, a migration), where every file date is the copy day.
    Built,
}

impl TimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            TimeSource::TagUpdated => "tag_updated",
            TimeSource::Pushed => "pushed",
            TimeSource::Created => "created",
            TimeSource::Pulled => "pulled",
            TimeSource::Built => "built",
        }
    }
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RelativeTo {
    /// Ages are measured from the plan's `now`.
    #[default]
    Now,
    /// Ages are measured from the newest image of the group (restic): an idle repository keeps
    /// its history.
    GroupLatest,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MissingTime {
    /// An image whose time is unknown is kept (and says so).
    #[default]
    Keep,
    /// Planning fails when a needed time is unknown.
    Error,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default = "default_time_source")]
    pub time_source: TimeSource,
    #[serde(default)]
    pub relative_to: RelativeTo,
    /// IANA name for calendar buckets (ISO weeks). Default UTC.
    #[serde(default = "default_tz")]
    pub timezone: String,
    #[serde(default)]
    pub missing_time: MissingTime,
    /// Remove tags that no rule keeps even when their digest stays (kept by another tag).
    /// With `false` such tags stay with their digest.
    #[serde(default = "yes")]
    pub untag: bool,
    /// Where pull data comes from (`time_source: pulled`, `pulled_within`, `not_pulled_within`).
    #[serde(default)]
    pub pull_sources: Vec<PullSource>,
    /// What a plan does when it deletes (or untags) images pulled recently, by tag or by
    /// digest (the pull data of `pull_sources`, or `stowage plan --pulls DB`): `warn`
    /// (default: the plan lists them), `block` (the plan is blocked), or `accept`.
    #[serde(default)]
    pub would_break: WouldBreakAction,
    /// How far back that check looks (`30d`); default: all the pull data there is.
    #[serde(default)]
    pub would_break_window: Option<String>,
    /// Repositories holding signatures and attestations of images stored in other
    /// repositories (cosign's `COSIGN_REPOSITORY`), as patterns: their `sha256-<hex>.sig`
    /// tags follow their subject wherever it is linked, and are orphans only when it is
    /// linked nowhere.
    #[serde(default)]
    pub cosign_repositories: Vec<String>,
}

/// `settings.would_break`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WouldBreakAction {
    /// The plan lists the pulls it would break and says so in its warnings.
    #[default]
    Warn,
    /// A plan that would break a recent pull is blocked (apply refuses it); so is a plan
    /// with no pull data, or with less than `would_break_window` covered; at apply, a pull
    /// since the plan of one of its targets refuses the apply.
    Block,
    /// Listed in the plan, no warning: the operator has decided these images may go.
    Accept,
}

impl WouldBreakAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WouldBreakAction::Warn => "warn",
            WouldBreakAction::Block => "block",
            WouldBreakAction::Accept => "accept",
        }
    }
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum PullSourceType {
    /// stowage's own database (`stowage usage ingest` of the registry's access logs, and its
    /// notifications received by `stowage serve --history`). Scanners and health checks are
    /// filtered out at ingest.
    StowageHistory,
}

/// A source of pull data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PullSource {
    #[serde(rename = "type")]
    pub kind: PullSourceType,
    /// Relative paths are relative to the policy file.
    pub path: String,
    /// Data whose newest point is older than this is stale: the plan is refused (`2h`).
    #[serde(default)]
    pub max_age: Option<String>,
}

fn default_time_source() -> TimeSource {
    TimeSource::TagUpdated
}
fn default_tz() -> String {
    "UTC".into()
}
fn yes() -> bool {
    true
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            time_source: default_time_source(),
            relative_to: RelativeTo::Now,
            timezone: default_tz(),
            missing_time: MissingTime::Keep,
            untag: true,
            pull_sources: Vec::new(),
            would_break: WouldBreakAction::Warn,
            would_break_window: None,
            cosign_repositories: Vec::new(),
        }
    }
}

/// What no rule can override.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Protections {
    /// Never delete the newest N top-level images of a repository (by `settings.time_source`;
    /// ties: tagged before untagged, then smallest tag name, then digest).
    #[serde(default = "one")]
    pub keep_newest_per_repository: u32,
    /// Allow a repository to lose every image. Also needs `--unsafe-allow-empty` on the command
    /// line.
    #[serde(default)]
    pub allow_empty_repository: bool,
    #[serde(default)]
    pub in_use: Option<InUse>,
    #[serde(default)]
    pub pins: Vec<Pin>,
    /// Tag patterns that are never untagged nor deleted (`glob:latest`, `regex:v\d+`).
    #[serde(default)]
    pub immutable_tags: Vec<String>,
    /// Anything pushed or re-tagged within this window is kept (`24h`, `7d`).
    #[serde(default)]
    pub grace_period: Option<String>,
    #[serde(default)]
    pub limits: Limits,
}

fn one() -> u32 {
    1
}

impl Default for Protections {
    fn default() -> Self {
        Protections {
            keep_newest_per_repository: 1,
            allow_empty_repository: false,
            in_use: None,
            pins: Vec::new(),
            immutable_tags: Vec::new(),
            grace_period: None,
            limits: Limits::default(),
        }
    }
}

/// Image references that are in use (running, deployed, rollback targets).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InUse {
    /// A missing, unreadable or stale source aborts the plan (default). With `false` it is a
    /// warning and the source protects nothing.
    #[serde(default = "yes")]
    pub required: bool,
    /// A source file older than this is stale (`2h`).
    #[serde(default)]
    pub max_age: Option<String>,
    /// Host names (with port where used) under which this registry is reached; references to
    /// other hosts are not this registry's. References without a host are matched too (the
    /// safe direction).
    #[serde(default)]
    pub registry_aliases: Vec<String>,
    pub sources: Vec<InUseSource>,
    /// A reference by digest also protects the tags that point at that digest.
    #[serde(default = "yes")]
    pub protect_tags_of_digest_refs: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// One reference per line (`host/repo:tag`, `host/repo@sha256:…`); `#` comments.
    ImageRefs,
    /// `kubectl get pods -A -o json`: spec images and status image IDs of every container.
    KubernetesPodsJson,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InUseSource {
    pub name: String,
    pub format: SourceFormat,
    /// Relative paths are relative to the policy file.
    pub path: String,
}

/// A pinned reference, kept until `until` (RFC 3339) or forever.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Pin {
    /// `repo:tag` or `repo@sha256:…` (a registry host prefix is allowed).
    #[serde(rename = "ref")]
    pub reference: String,
    #[serde(default)]
    pub until: Option<String>,
    #[serde(default)]
    pub reason: String,
}

/// Circuit breakers: a plan that crosses one is blocked as a whole (nothing is applied).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    #[serde(default)]
    pub max_images_deleted: Option<u64>,
    /// `2TiB`, `500GB`, or a number of bytes.
    #[serde(default)]
    pub max_bytes_freed: Option<String>,
    /// Fraction (0..=1) of a repository's top-level images one plan may delete.
    #[serde(default)]
    pub max_fraction_per_repository: Option<f64>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Otherwise {
    Keep,
    Delete,
}

/// One policy: a scope, a selection, keep and delete rules, and what happens to the rest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    pub id: String,
    pub scope: Scope,
    #[serde(default)]
    pub select: Select,
    #[serde(default)]
    pub keep: Vec<Rule>,
    #[serde(default)]
    pub delete: Vec<Rule>,
    /// Mandatory: what happens to selected images no keep or delete rule matched.
    pub otherwise: Otherwise,
    #[serde(default)]
    pub overrides: Option<Overrides>,
}

/// The protections a policy may loosen for its own scope.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default)]
    pub keep_newest_per_repository: Option<u32>,
    #[serde(default)]
    pub allow_empty_repository: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Repository patterns (`glob:apps/**`, `regex:…`); `!` excludes.
    pub repositories: Vec<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TagState {
    Tagged,
    Untagged,
    Any,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReferrerSelect {
    /// Referrers (signatures, attestations, SBOMs) are not selected: they follow their subject.
    #[default]
    None,
    /// Only referrers whose subject is not in the repository.
    Orphaned,
    /// Referrers only (those whose subject survives are still never deleted).
    Any,
}

/// Which images of the scope a policy considers.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Tag patterns; the first that matches gives the named captures.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Default: `tagged` when `tags` is given, else `any`.
    #[serde(default)]
    pub tag_state: Option<TagState>,
    #[serde(default)]
    pub referrers: ReferrerSelect,
    /// `image`, `index`, or a media-type glob (`application/vnd.cncf.helm.*`).
    #[serde(default)]
    pub artifact_type: Vec<String>,
    /// Platform patterns (`linux/amd64`, `linux/arm/*`, `!windows/*`): an index is selected
    /// when one of its children's platforms matches, a single-platform image by its config's
    /// `os/architecture[/variant]`. An image whose platform is unknown is not selected.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// By the bytes an image references (manifest, children, configs, layers; shared or not).
    #[serde(default)]
    pub size: Option<SizeSelect>,
    /// Manifest (or index) annotations: key -> pattern; every one must match. `!pattern`
    /// also matches an image without the key.
    #[serde(default)]
    pub annotations: std::collections::BTreeMap<String, String>,
    /// OCI labels of the image config (`config.Labels`; an index: any platform's): key ->
    /// pattern, as `annotations`.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Size bounds (`500MB`, `2GiB`, or bytes); both given: between them.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeSelect {
    #[serde(default)]
    pub larger_than: Option<String>,
    #[serde(default)]
    pub smaller_than: Option<String>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// By the rule's time source, newest first.
    Time,
    /// By semantic version (a leading `v` is ignored), highest first.
    Semver,
    /// By natural order of the tag (`build-10` after `build-9`), highest first.
    Natural,
}

#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Prerelease {
    #[default]
    Include,
    /// Semver pre-releases neither count nor are kept by a counting criterion.
    ExcludeFromCount,
}

/// Calendar buckets (restic `--keep-daily` and friends): keep the newest image of each of the
/// last N periods that have an image. `unlimited` is written as `-1`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Calendar {
    #[serde(default)]
    pub hourly: Option<i64>,
    #[serde(default)]
    pub daily: Option<i64>,
    #[serde(default)]
    pub weekly: Option<i64>,
    #[serde(default)]
    pub monthly: Option<i64>,
    #[serde(default)]
    pub quarterly: Option<i64>,
    #[serde(default)]
    pub yearly: Option<i64>,
}

/// Calendar buckets within a window (restic `--keep-within-daily` and friends): keep the
/// newest image of each period whose image is younger than the window (`7d`, `8w`, `2y`),
/// measured like `within`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CalendarWithin {
    #[serde(default)]
    pub hourly: Option<String>,
    #[serde(default)]
    pub daily: Option<String>,
    #[serde(default)]
    pub weekly: Option<String>,
    #[serde(default)]
    pub monthly: Option<String>,
    #[serde(default)]
    pub quarterly: Option<String>,
    #[serde(default)]
    pub yearly: Option<String>,
}

/// A filter on tags and captures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct When {
    /// Named capture -> pattern.
    #[serde(default)]
    pub capture: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// Declares a struct whose own fields are followed by the criterion fields, listed here once.
/// `Criterion` and `Rule` both carry them (a rule is a criterion plus how to group and order);
/// serde cannot `#[serde(flatten)]` a struct under `deny_unknown_fields`, and a typo in a
/// policy must stay an error, so the fields are spelled into both structs by this macro.
/// It also writes `criterion_fields`, the struct's criterion fields as a `Criterion`.
macro_rules! with_criterion_fields {
    (
        $(#[$attr:meta])*
        pub struct $name:ident { $($own:tt)* }
    ) => {
        with_criterion_fields! {
            @emit [$(#[$attr])*] $name [$($own)*]
            last: Option<u64>,
            within: Option<String>,
            older_than: Option<String>,
            newer_than: Option<String>,
            pulled_within: Option<String>,
            not_pulled_within: Option<String>,
            calendar: Option<Calendar>,
            calendar_within: Option<CalendarWithin>,
            when: Option<When>,
            all: Option<Vec<Criterion>>,
            any: Option<Vec<Criterion>>,
            not: Option<Box<Criterion>>,
        }
    };
    (@emit [$($attr:tt)*] $name:ident [$($own:tt)*] $($field:ident: $ty:ty,)*) => {
        $($attr)*
        pub struct $name {
            $($own)*
            $(
                #[serde(default)]
                pub $field: $ty,
            )*
        }

        impl $name {
            /// The criterion fields alone, as a `Criterion`.
            #[allow(clippy::clone_on_copy)]
            pub fn criterion_fields(&self) -> Criterion {
                Criterion { $($field: self.$field.clone(),)* }
            }
        }
    };
}

with_criterion_fields! {
    /// A criterion: exactly one of these fields (`all`/`any`/`not` compose).
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Criterion {}
}

with_criterion_fields! {
    /// A keep or delete rule: an id, how to group and order, and one criterion (compose several
    /// with `all:` / `any:`). `when:` beside the criterion narrows the images the rule looks at
    /// before counting.
    #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Rule {
        pub id: String,
        /// Capture names (and `repository`, always implied): counting happens per group.
        #[serde(default)]
        pub group_by: Vec<String>,
        #[serde(default)]
        pub order_by: Option<OrderBy>,
        #[serde(default)]
        pub time_source: Option<TimeSource>,
        #[serde(default)]
        pub prerelease: Prerelease,
        /// Count across every repository of the policy's scope (`group_by` captures then group
        /// images of different repositories together: "the last 3 per branch over apps/**").
        /// Default: counting is per repository.
        #[serde(default)]
        pub across_repositories: bool,
    }
}

impl Rule {
    /// The rule's criterion fields, as a criterion (`when` stays with the rule: it narrows
    /// the images before counting).
    pub fn criterion(&self) -> Criterion {
        Criterion {
            when: None,
            ..self.criterion_fields()
        }
    }
}

/// The JSON Schema of the policy file (published as `docs/policy.schema.json`).
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(PolicyFile);
    let mut s = serde_json::to_string_pretty(&schema).unwrap_or_default();
    s.push('\n');
    s
}
