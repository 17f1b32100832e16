//! Tags that name another manifest: cosign's signatures, attestations and SBOMs
//! (`sha256-<hex>.sig|.att|.sbom`, in the subject's repository or, with `COSIGN_REPOSITORY`,
//! in another), and the OCI 1.1 referrers tag schema (`sha256-<hex>`: the fallback index that
//! lists a subject's referrers on registries without the referrers API, such as 2.8).
//!
//! Such a tag is worth keeping only while its subject exists: retention makes them follow
//! their subject, GC can remove the ones whose subject is gone, and the report counts them.

use crate::digest::Digest;

/// The suffixes cosign gives its tags.
pub const SUFFIXES: [&str; 3] = [".sig", ".att", ".sbom"];

/// The subject a signature-style tag names, or `None` for any other tag.
pub fn subject(tag: &str) -> Option<Digest> {
    let rest = tag.strip_prefix("sha256-")?;
    let hex = SUFFIXES
        .iter()
        .find_map(|s| rest.strip_suffix(s))
        .or((rest.len() == 64).then_some(rest))?;
    format!("sha256:{hex}").parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn signature_tags_name_their_subject_and_others_do_not() {
        let d: Digest = format!("sha256:{HEX}").parse().unwrap();
        for tag in [".sig", ".att", ".sbom", ""].map(|s| format!("sha256-{HEX}{s}")) {
            assert_eq!(subject(&tag), Some(d.clone()), "{tag}");
        }
        for tag in [
            "latest".to_string(),
            format!("sha256-{HEX}.txt"),
            format!("sha256-{}", &HEX[1..]),
            format!("sha256-{}.sig", HEX.to_uppercase()),
            format!("sha512-{HEX}.sig"),
        ] {
            assert_eq!(subject(&tag), None, "{tag}");
        }
    }
}
