//! The registry's redis blob descriptor cache: delete the keys of fenced digests.
//!
//! Registry 2.8 (`registry/storage/cache/redis/redis.go`) keeps a hash `blobs::<digest>`
//! (digest, size, mediatype) per blob, a set `repository::<name>::blobs` and a hash
//! `repository::<name>::blobs::<digest>` per repository membership, none with a TTL. A
//! repository-scoped lookup also requires `blobs::<digest>`, so deleting that one key makes
//! every lookup of the digest fall through to the storage; it is what the registry's own
//! blob delete does (`HDEL blobs::<digest> digest size mediatype`). The keys survive a
//! registry restart, so a restart does not help here.

use stowage_model::digest::Digest;

/// Delete `blobs::<digest>` for every digest, and the membership set
/// `repository::<name>::blobs` of every repository whose sections a surgery removed (its
/// blobs may stay, shared, so `blobs::<digest>` alone would still vouch for them in the
/// removed repository); returns how many keys existed.
pub(crate) fn invalidate(
    addr: &str,
    password: Option<&str>,
    db: i64,
    digests: &[Digest],
    repositories: &[String],
) -> Result<u64, String> {
    let mut info: redis::ConnectionInfo = format!("redis://{addr}/")
        .parse()
        .map_err(|e| format!("redis address {addr:?}: {e}"))?;
    let mut ri = info.redis_settings().clone().set_db(db);
    if let Some(p) = password {
        ri = ri.set_password(p);
    }
    info = info.set_redis_settings(ri);
    let client = redis::Client::open(info).map_err(|e| format!("redis at {addr}: {e}"))?;
    let mut con = client
        .get_connection_with_timeout(std::time::Duration::from_secs(10))
        .map_err(|e| format!("redis at {addr}: {e}"))?;
    let mut n = 0u64;
    let keys: Vec<String> = digests
        .iter()
        .map(|d| format!("blobs::{d}"))
        .chain(
            repositories
                .iter()
                .map(|r| format!("repository::{r}::blobs")),
        )
        .collect();
    for keys in keys.chunks(500) {
        let removed: u64 = redis::cmd("DEL")
            .arg(keys)
            .query(&mut con)
            .map_err(|e| format!("redis at {addr}: DEL: {e}"))?;
        n += removed;
    }
    Ok(n)
}
