//! The precompiled cache (`[engine] cache_dir`): a restart loads what an earlier
//! run compiled, and a corrupted or foreign file, or a directory others can
//! write to, is never trusted: hookbox compiles instead and serves all the same.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use hookbox::plugin::cache::{self, CacheStats};
use hookbox::reload::Change;
use hookbox_tests::{TenantSpec, TestServer, login_conflict_wasm, misbehave_wasm, sample_request};

/// The login the reference plugin gives Okta's sample request.
const RESOLVED_LOGIN: &str = "sally2.admin2.272ed9@clouditude.net";

fn tenants() -> Vec<TenantSpec> {
    vec![
        TenantSpec::new("acme", login_conflict_wasm()),
        TenantSpec::new("beta", misbehave_wasm()).setting("mode", "echo"),
        // Same file as acme: compiled (and cached) once.
        TenantSpec::new("gamma", login_conflict_wasm()),
    ]
}

async fn start(tenants: &[TenantSpec], cache_dir: &Path) -> TestServer {
    TestServer::builder()
        .tenants(tenants)
        .cache_dir(cache_dir)
        .start()
        .await
}

fn stats(server: &TestServer) -> CacheStats {
    server.cache_stats()
}

/// Whether each tenant's plugin came from the cache, by tenant id.
fn from_cache(server: &TestServer) -> Vec<(String, bool)> {
    let mut v: Vec<_> = server
        .tenants()
        .iter()
        .map(|t| (t.id().to_owned(), t.plugin().from_cache()))
        .collect();
    v.sort();
    v
}

/// The cache file of the plugin serving `tenant`, and that plugin's SHA-256.
fn cache_file(server: &TestServer, tenant: &str) -> (PathBuf, [u8; 32]) {
    let digest = server.tenant(tenant).plugin().digest().to_owned();
    let path = server.cache_file(&digest);
    (path, unhex(&digest))
}

fn unhex(s: &str) -> [u8; 32] {
    let mut out = [0; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

/// Every tenant answers Okta's sample as its plugin should.
async fn assert_serves(server: &TestServer) {
    let client = server.client();
    for id in ["acme", "gamma"] {
        let reply = client
            .hook(id, &format!("secret-{id}"), &sample_request())
            .await;
        assert_eq!(
            reply.status,
            200,
            "{id}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(reply.new_login().as_deref(), Some(RESOLVED_LOGIN), "{id}");
        assert_eq!(reply.json()["debugContext"]["resolver"], "login-conflict");
    }
    let reply = client.hook("beta", "secret-beta", &sample_request()).await;
    assert_eq!(
        reply.status,
        200,
        "beta: {}",
        String::from_utf8_lossy(&reply.body)
    );
    assert_eq!(
        reply.json()["debugContext"]["eventId"],
        "JUGOUiYZTaKPmH6db0nDag"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_from_the_cache_compiles_nothing_and_serves() {
    let cache_dir = tempfile::tempdir().unwrap();
    let first = start(&tenants(), cache_dir.path()).await;
    let s = stats(&first);
    assert_eq!((s.hits, s.misses, s.written), (0, 2, 2), "{s:?}");
    assert!(from_cache(&first).iter().all(|(_, hit)| !hit));
    assert_serves(&first).await;

    // A reload's new version is cached too.
    first.rewrite_tenants(&[
        TenantSpec::new("acme", misbehave_wasm()).setting("mode", "echo"),
        TenantSpec::new("beta", login_conflict_wasm()),
    ]);
    let report = first.reload().await;
    assert!(report.applied, "{report:?}");
    assert!(report.needs_restart.is_empty(), "{report:?}");
    assert_eq!(report.tenant("acme").unwrap().change, Change::Updated);
    // Both files were compiled at start already: the reload reuses them in memory.
    assert_eq!(stats(&first).misses, 2);
    first.stop().await.unwrap();

    let second = start(&tenants(), cache_dir.path()).await;
    let s = stats(&second);
    assert_eq!(
        s,
        CacheStats {
            hits: 2,
            ..CacheStats::default()
        }
    );
    assert_eq!(
        from_cache(&second),
        [
            ("acme".to_owned(), true),
            ("beta".to_owned(), true),
            ("gamma".to_owned(), true)
        ]
    );
    assert_serves(&second).await;

    // A reload to a file never seen compiles it and writes it to the cache; a later
    // reload on a fresh server loads it from there.
    let plugins = tempfile::tempdir().unwrap();
    let renamed = plugins.path().join("echo-v2.wasm");
    let mut bytes = std::fs::read(misbehave_wasm()).unwrap();
    bytes.extend_from_slice(&custom_section("hookbox-test", b"v2"));
    std::fs::write(&renamed, &bytes).unwrap();
    let v2 = || {
        vec![
            TenantSpec::new("acme", login_conflict_wasm()),
            TenantSpec::new("beta", renamed.clone()).setting("mode", "echo"),
        ]
    };
    second.rewrite_tenants(&v2());
    let report = second.reload().await;
    assert_eq!(
        report.tenant("beta").unwrap().change,
        Change::Updated,
        "{report:?}"
    );
    let s = stats(&second);
    assert_eq!((s.hits, s.misses, s.written), (2, 1, 1), "{s:?}");
    second.stop().await.unwrap();

    let third = start(&v2(), cache_dir.path()).await;
    assert_eq!(stats(&third).hits, 2);
    assert_eq!(stats(&third).misses, 0);
    third.stop().await.unwrap();
}

/// A custom section (id 0): valid anywhere in a component, changes the digest, not the code.
fn custom_section(name: &str, data: &[u8]) -> Vec<u8> {
    let mut body = vec![u8::try_from(name.len()).unwrap()];
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(data);
    let mut out = vec![0, u8::try_from(body.len()).unwrap()];
    out.extend_from_slice(&body);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupted_cache_file_is_recompiled_and_rewritten() {
    let cache_dir = tempfile::tempdir().unwrap();
    let first = start(&tenants(), cache_dir.path()).await;
    let (path, source) = cache_file(&first, "acme");
    first.stop().await.unwrap();

    let mut bytes = std::fs::read(&path).unwrap();
    assert!(cache::decode(&bytes, &source).is_ok());
    let mid = cache::HEADER_LEN + (bytes.len() - cache::HEADER_LEN) / 2;
    for b in &mut bytes[mid..mid + 16] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(
        cache::decode(&bytes, &source),
        Err(cache::HeaderError::Checksum)
    );

    let second = start(&tenants(), cache_dir.path()).await;
    let s = stats(&second);
    assert_eq!(
        (s.hits, s.misses, s.rejected, s.written),
        (1, 1, 1, 1),
        "{s:?}"
    );
    assert_eq!(
        from_cache(&second),
        [
            ("acme".to_owned(), false),
            ("beta".to_owned(), true),
            ("gamma".to_owned(), false)
        ]
    );
    assert_serves(&second).await;
    second.stop().await.unwrap();

    // Rewritten whole: valid again, and the next start loads it.
    let rewritten = std::fs::read(&path).unwrap();
    assert!(cache::decode(&rewritten, &source).is_ok());
    assert_ne!(rewritten, bytes);
    let third = start(&tenants(), cache_dir.path()).await;
    assert_eq!(stats(&third).hits, 2);
    assert_eq!(stats(&third).rejected, 0);
    third.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_file_under_the_right_name_is_rejected() {
    let cache_dir = tempfile::tempdir().unwrap();
    let first = start(&tenants(), cache_dir.path()).await;
    let (acme_path, acme_source) = cache_file(&first, "acme");
    let (beta_path, _) = cache_file(&first, "beta");
    first.stop().await.unwrap();

    // 1. Garbage: not even a hookbox cache file.
    let garbage: Vec<u8> = (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(&acme_path, &garbage).unwrap();
    let second = start(&tenants(), cache_dir.path()).await;
    let s = stats(&second);
    assert_eq!((s.hits, s.rejected, s.written), (1, 1, 1), "{s:?}");
    assert!(!second.tenant("acme").plugin().from_cache());
    assert_serves(&second).await;
    second.stop().await.unwrap();

    // 2. acme's header (right magic, version, source digest) around another
    // component's machine code, its length patched in: the checksum refuses it,
    // so the other plugin never answers for acme.
    let acme = std::fs::read(&acme_path).unwrap();
    let beta = std::fs::read(&beta_path).unwrap();
    let mut forged = acme[..cache::HEADER_LEN].to_vec();
    let foreign_payload = &beta[cache::HEADER_LEN..];
    forged[48..56].copy_from_slice(&(foreign_payload.len() as u64).to_le_bytes());
    forged.extend_from_slice(foreign_payload);
    assert_eq!(
        cache::decode(&forged, &acme_source),
        Err(cache::HeaderError::Checksum)
    );
    std::fs::write(&acme_path, &forged).unwrap();
    let third = start(&tenants(), cache_dir.path()).await;
    let s = stats(&third);
    assert_eq!((s.hits, s.rejected, s.written), (1, 1, 1), "{s:?}");
    assert_serves(&third).await;
    third.stop().await.unwrap();
    assert!(cache::decode(&std::fs::read(&acme_path).unwrap(), &acme_source).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_dir_writable_by_others_is_refused() {
    let cache_dir = tempfile::tempdir().unwrap();
    let first = start(&tenants(), cache_dir.path()).await;
    let (path, _) = cache_file(&first, "acme");
    first.stop().await.unwrap();
    let before = std::fs::read(&path).unwrap();

    std::fs::set_permissions(cache_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let second = start(&tenants(), cache_dir.path()).await;
    let s = stats(&second);
    // Valid files are there, but a directory anyone can write to is neither read nor written.
    assert_eq!(
        (s.hits, s.written, s.rejected, s.refused),
        (0, 0, 0, 2),
        "{s:?}"
    );
    assert!(from_cache(&second).iter().all(|(_, hit)| !hit));
    assert_serves(&second).await;
    second.stop().await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // A file others can write to is not trusted either, even in a private directory.
    std::fs::set_permissions(cache_dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let third = start(&tenants(), cache_dir.path()).await;
    let s = stats(&third);
    assert_eq!((s.hits, s.rejected, s.written), (1, 1, 1), "{s:?}");
    assert_serves(&third).await;
    third.stop().await.unwrap();
    // Rewritten by hookbox, with its own private mode.
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

/// The cache stays under `cache_max_size`: the least recently used files go
/// first (a hit counts as a use), crashed writers' temporary files go once
/// stale, and nothing else in the directory is touched.
#[tokio::test]
async fn cache_is_pruned_to_its_size_least_recently_used_first() {
    use std::time::{Duration, SystemTime};
    let cache_dir = tempfile::tempdir().unwrap();
    let dir = cache_dir.path();
    let ago = |hours: u64| SystemTime::now() - Duration::from_secs(hours * 3600);
    let file = |name: &str, len: u64, modified: SystemTime| {
        let path = dir.join(name);
        let f = std::fs::File::create(&path).unwrap();
        f.set_len(len).unwrap();
        f.set_modified(modified).unwrap();
        path
    };
    // Plugin versions of earlier deploys: 60 MiB against a 50 MiB limit.
    const MIB: u64 = 1 << 20;
    let oldest = file("01-old.cwasm", 20 * MIB, ago(3));
    let older = file("02-old.cwasm", 20 * MIB, ago(2));
    let old = file("03-old.cwasm", 20 * MIB, ago(1));
    let stale_tmp = file(".03-old.cwasm.1-2.tmp", 10, ago(2));
    let fresh_tmp = file(".04-new.cwasm.3-4.tmp", 10, SystemTime::now());
    let notes = file("notes.txt", 30 * MIB, ago(9));

    let first = TestServer::builder()
        .tenants(&tenants())
        .cache_dir(dir)
        .cache_max_size("50MiB")
        .start()
        .await;
    let s = stats(&first);
    // The oldest went at open (40 MiB left); the two new files (under 2 MiB:
    // see the size check below) fit beside the rest.
    assert_eq!((s.pruned, s.written), (1, 2), "{s:?}");
    assert!(!oldest.exists() && older.exists() && old.exists());
    assert!(!stale_tmp.exists() && fresh_tmp.exists() && notes.exists());
    let (acme, _) = cache_file(&first, "acme");
    let (beta, _) = cache_file(&first, "beta");
    let written = std::fs::metadata(&acme).unwrap().len() + std::fs::metadata(&beta).unwrap().len();
    assert!(
        written < 2 * MIB,
        "the test assumes small plugins: {written} bytes"
    );
    assert_serves(&first).await;
    first.stop().await.unwrap();

    // A hit is a use: acme's file, made to look 5 hours old, is fresh again,
    // so under a tighter limit the older deploys' files go before it.
    std::fs::File::open(&acme)
        .unwrap()
        .set_modified(ago(5))
        .unwrap();
    let second = TestServer::builder()
        .tenants(&tenants())
        .cache_dir(dir)
        .cache_max_size("22MiB")
        .start()
        .await;
    let s = stats(&second);
    // At open acme's file was the oldest and went (recompiled, rewritten);
    // then `older`, as the rest did not fit (old's 20 MiB and the two small
    // files do); beta's was a hit.
    assert_eq!((s.hits, s.written, s.pruned), (1, 1, 2), "{s:?}");
    assert!(acme.exists() && beta.exists() && !older.exists() && old.exists());
    let touched = std::fs::metadata(&beta).unwrap().modified().unwrap();
    assert!(touched > ago(1), "a hit sets the file's modification time");
    assert_serves(&second).await;
    second.stop().await.unwrap();
}
