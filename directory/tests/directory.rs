//! End-to-end tests of the directory lookup against `FakeOkta`, a real HTTPS Users API on
//! loopback with its own CA. Calls are counted at the fake server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hookbox_directory::testing::{FakeOkta, epoch_now};
use hookbox_directory::{
    Directory, DirectoryClients, DirectoryConfig, DirectoryError, DirectorySettings,
};

const ADA: &str = "ada.lovelace@example.com";
const ADA_ID: &str = "00uADA0000000000001";

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

async fn okta_with_ada() -> FakeOkta {
    let okta = FakeOkta::start().await.unwrap();
    okta.add_user(ADA, ADA_ID);
    okta
}

/// Polls `f` every 20 ms until it returns `Some`, for at most 15 s.
async fn poll<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let give_up = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < give_up, "condition not reached in 15 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn found_free_and_case_insensitive() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    assert_eq!(
        dir.find_user(ADA, soon()).await,
        Ok(Some(ADA_ID.to_owned()))
    );
    assert_eq!(
        dir.find_user("Ada.Lovelace@EXAMPLE.com", soon()).await,
        Ok(Some(ADA_ID.to_owned()))
    );
    assert_eq!(dir.find_user("grace@example.com", soon()).await, Ok(None));
    assert_eq!(okta.requests_for("grace@example.com"), 1);
    let stats = dir.stats();
    assert_eq!((stats.lookups, stats.found, stats.free), (3, 2, 1));
}

#[tokio::test]
async fn logins_with_special_characters_are_one_path_segment() {
    let okta = FakeOkta::start().await.unwrap();
    let odd = "a/b?c#d%e+f g@example.com";
    okta.add_user(odd, "00uODD");
    let dir = okta.directory();
    assert_eq!(dir.find_user(odd, soon()).await, Ok(Some("00uODD".into())));
    assert_eq!(okta.requests_for(odd), 1);
    // `..` must not navigate to another endpoint.
    assert_eq!(dir.find_user("..", soon()).await, Ok(None));
    assert_eq!(okta.requests_for(".."), 1);
    // An empty login is free without a call (an empty segment would list users).
    let before = okta.request_count();
    assert_eq!(dir.find_user("", soon()).await, Ok(None));
    assert_eq!(okta.request_count(), before);
}

#[tokio::test]
async fn a_user_matched_by_id_does_not_hold_that_login() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    // Okta's path also matches a user id: the answer's profile.login is not the login looked up.
    assert_eq!(dir.find_user(ADA_ID, soon()).await, Ok(None));
    assert_eq!(okta.requests_for(ADA_ID), 1);
}

#[tokio::test]
async fn wrong_token_is_denied_and_logged_without_the_token() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    okta.set_token("00another-token");
    let logs = Logs::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .finish();
    let answer = {
        let _guard = tracing::subscriber::set_default(subscriber);
        dir.find_user(ADA, soon()).await
    };
    assert_eq!(answer, Err(DirectoryError::Denied));
    let text = logs.text();
    assert!(text.contains("refused"), "nothing logged: {text}");
    assert!(text.contains("401"), "{text}");
    assert!(text.contains("E0000011"), "{text}");
    assert!(
        !text.contains(hookbox_directory::testing::TOKEN),
        "token logged: {text}"
    );
    assert!(!text.contains(ADA), "login logged: {text}");
    // Errors are not cached: with the right token again, Okta is asked again.
    okta.set_token(hookbox_directory::testing::TOKEN);
    assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    assert_eq!(okta.requests_for(ADA), 2);
    assert_eq!(dir.stats().denied, 1);
}

#[tokio::test]
async fn status_429_stops_calls_until_the_reset() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    let reset = epoch_now() + 2;
    okta.set_429_until(reset);
    assert_eq!(
        dir.find_user(ADA, soon()).await,
        Err(DirectoryError::RateLimited)
    );
    assert_eq!(okta.request_count(), 1);
    assert!(dir.rate_limited_until().is_some());
    // Meanwhile: answered at once, without a call. A call would now wait 30 s at the fake and
    // end TimedOut, so a RateLimited answer shows that none was made.
    okta.set_delay(Duration::from_secs(30));
    for login in [ADA, "grace@example.com", "linus@example.com"] {
        assert_eq!(
            dir.find_user(login, soon()).await,
            Err(DirectoryError::RateLimited)
        );
    }
    assert_eq!(okta.request_count(), 1);
    okta.set_delay(Duration::ZERO);
    // After the reset lookups go through again (polled: no fixed sleep).
    let answer = poll(|| {
        let dir = dir.clone();
        async move {
            match dir.find_user(ADA, soon()).await {
                Err(DirectoryError::RateLimited) => None,
                other => Some(other),
            }
        }
    })
    .await;
    assert_eq!(answer, Ok(Some(ADA_ID.into())));
    assert!(epoch_now() >= reset);
    assert_eq!(okta.request_count(), 2, "a call was made before the reset");
    let stats = dir.stats();
    assert_eq!(stats.rate_limit_pauses, 1);
    assert!(stats.rate_limited >= 4);
}

#[tokio::test]
async fn remaining_zero_stops_calls_until_the_reset() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    let reset = epoch_now() + 2;
    okta.set_rate_limit(1, reset);
    // The last call of the window is answered (Remaining: 0)...
    assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    // ...and the next lookups are not sent.
    okta.set_delay(Duration::from_secs(30));
    assert_eq!(
        dir.find_user("grace@example.com", soon()).await,
        Err(DirectoryError::RateLimited)
    );
    assert_eq!(okta.request_count(), 1);
    okta.set_delay(Duration::ZERO);
    let answer = poll(|| {
        let dir = dir.clone();
        async move {
            match dir.find_user("grace@example.com", soon()).await {
                Err(DirectoryError::RateLimited) => None,
                other => Some(other),
            }
        }
    })
    .await;
    assert_eq!(answer, Ok(None));
    assert_eq!(okta.request_count(), 2, "a call was made before the reset");
}

#[tokio::test]
async fn tenants_sharing_org_and_token_share_the_rate_limit() {
    let okta = okta_with_ada().await;
    let dir = tempfile::tempdir().unwrap();
    let clients = DirectoryClients::new();
    let config = okta.config_in(dir.path());
    let a = Directory::from_config(&config, &clients).unwrap();
    let b = Directory::from_config(&config, &clients).unwrap();
    okta.set_429_until(epoch_now() + 60);
    assert_eq!(
        a.find_user(ADA, soon()).await,
        Err(DirectoryError::RateLimited)
    );
    assert_eq!(
        b.find_user(ADA, soon()).await,
        Err(DirectoryError::RateLimited)
    );
    assert_eq!(okta.request_count(), 1);
    // Another token on the same org has its own gate.
    let other = DirectorySettings::new(
        okta.url(),
        hookbox_directory::ApiToken::parse("00other", "test").unwrap(),
    );
    let c = Directory::new(
        DirectorySettings {
            ca_file: config.ca_file.clone(),
            ..other
        },
        &clients,
    )
    .unwrap();
    assert_eq!(c.find_user(ADA, soon()).await, Err(DirectoryError::Denied));
    assert_eq!(okta.request_count(), 2);
}

#[tokio::test]
async fn a_slow_directory_times_out_by_the_deadline() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    okta.set_delay(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_millis(300);
    assert_eq!(
        dir.find_user(ADA, deadline).await,
        Err(DirectoryError::TimedOut)
    );
    // Past the deadline: no call at all.
    let before = okta.request_count();
    assert_eq!(
        dir.find_user("grace@example.com", Instant::now()).await,
        Err(DirectoryError::TimedOut)
    );
    assert_eq!(okta.request_count(), before);
    assert_eq!(dir.stats().timed_out, 2);
}

#[tokio::test]
async fn call_timeout_before_the_deadline_is_unavailable() {
    let okta = okta_with_ada().await;
    let dir = okta.directory_with(DirectorySettings {
        call_timeout: Duration::from_millis(100),
        ..okta.settings()
    });
    okta.set_delay(Duration::from_secs(30));
    let deadline = Instant::now() + Duration::from_secs(20);
    match dir.find_user(ADA, deadline).await {
        Err(DirectoryError::Unavailable(text)) => {
            assert!(text.contains("did not answer"), "{text}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn a_down_directory_is_unavailable_and_not_cached() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    okta.set_down(true);
    match dir.find_user(ADA, soon()).await {
        Err(DirectoryError::Unavailable(text)) => {
            assert!(text.contains("503"), "{text}");
            assert!(!text.contains(ADA), "{text}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    okta.set_down(false);
    assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    assert_eq!(okta.requests_for(ADA), 2);
}

#[tokio::test]
async fn an_unreachable_directory_is_unavailable() {
    let okta = okta_with_ada().await;
    let settings = okta.settings();
    let client = okta.client();
    drop(okta);
    // The port is closed now (the fake stopped listening).
    let dir = Directory::with_client(settings, client).unwrap();
    match dir.find_user(ADA, soon()).await {
        Err(DirectoryError::Unavailable(text)) => assert!(!text.contains(ADA), "{text}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_unavailable() {
    let okta = okta_with_ada().await;
    let clients = DirectoryClients::new();
    // Without the fake's CA: the web PKI roots do not trust it.
    let dir = Directory::new(okta.settings(), &clients).unwrap();
    match dir.find_user(ADA, soon()).await {
        Err(DirectoryError::Unavailable(text)) => {
            assert!(text.to_lowercase().contains("certificate"), "{text}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn found_users_are_cached() {
    let okta = okta_with_ada().await;
    let dir = okta.directory();
    assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    // Again, in another case: from the cache, even with Okta down.
    okta.set_down(true);
    assert_eq!(
        dir.find_user(&ADA.to_uppercase(), soon()).await,
        Ok(Some(ADA_ID.into()))
    );
    assert_eq!(okta.request_count(), 1);
    let stats = dir.stats();
    assert_eq!((stats.cache_hits, stats.okta_calls), (1, 1));
}

#[tokio::test]
async fn free_logins_are_rechecked_after_their_short_ttl() {
    let okta = FakeOkta::start().await.unwrap();
    let dir = okta.directory_with(DirectorySettings {
        free_ttl: Duration::from_secs(1),
        ..okta.settings()
    });
    let grace = "grace@example.com";
    assert_eq!(dir.find_user(grace, soon()).await, Ok(None));
    // The user is created in Okta meanwhile.
    okta.add_user(grace, "00uGRACE");
    let answer = poll(|| {
        let dir = dir.clone();
        async move {
            match dir.find_user(grace, soon()).await {
                Ok(None) => None,
                other => Some(other),
            }
        }
    })
    .await;
    assert_eq!(answer, Ok(Some("00uGRACE".into())));
    assert_eq!(
        okta.requests_for(grace),
        2,
        "the free answer was re-checked more than once"
    );
    assert!(dir.stats().cache_hits >= 1);
}

#[tokio::test]
async fn zero_ttls_and_no_cache_always_ask() {
    let okta = okta_with_ada().await;
    let dir = okta.directory_with(DirectorySettings {
        cache_entries: 0,
        ..okta.settings()
    });
    for _ in 0..3 {
        assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    }
    assert_eq!(okta.requests_for(ADA), 3);
}

#[tokio::test]
async fn the_per_request_cap_answers_rate_limited() {
    let okta = okta_with_ada().await;
    let dir = okta.directory_with(DirectorySettings {
        max_lookups_per_request: 2,
        ..okta.settings()
    });
    let mut budget = dir.request_budget();
    assert_eq!(budget.remaining(), 2);
    assert_eq!(
        dir.find_user_in(ADA, soon(), &mut budget).await,
        Ok(Some(ADA_ID.into()))
    );
    // A cache hit takes one too.
    assert_eq!(
        dir.find_user_in(ADA, soon(), &mut budget).await,
        Ok(Some(ADA_ID.into()))
    );
    assert_eq!(
        dir.find_user_in("grace@example.com", soon(), &mut budget)
            .await,
        Err(DirectoryError::RateLimited)
    );
    assert_eq!(okta.request_count(), 1);
    // The next plugin call has a fresh budget.
    let mut next = dir.request_budget();
    assert_eq!(
        dir.find_user_in("grace@example.com", soon(), &mut next)
            .await,
        Ok(None)
    );
    let stats = dir.stats();
    assert_eq!((stats.budget_exhausted, stats.rate_limited), (1, 1));
}

#[tokio::test]
async fn from_a_toml_config_with_token_and_ca_files() {
    let okta = okta_with_ada().await;
    let tmp = tempfile::tempdir().unwrap();
    let written = okta.config_in(tmp.path());
    let text = format!(
        "url = \"{}\"\ntoken_file = \"{}\"\nca_file = \"{}\"\nfound_ttl = \"10m\"\nfree_ttl = \"30s\"\ncache_entries = 100\nmax_lookups_per_request = 4\ncall_timeout = \"800ms\"\n",
        okta.url(),
        written.token_file.as_ref().unwrap().display(),
        written.ca_file.as_ref().unwrap().display(),
    );
    let config: DirectoryConfig = toml::from_str(&text).unwrap();
    let dir = Directory::from_config(&config, &DirectoryClients::new()).unwrap();
    assert_eq!(dir.request_budget().remaining(), 4);
    assert_eq!(dir.find_user(ADA, soon()).await, Ok(Some(ADA_ID.into())));
    // A CA file that is not PEM is refused when the directory is built.
    let bad_ca = tmp.path().join("bad.pem");
    std::fs::write(&bad_ca, "not a certificate").unwrap();
    let config = DirectoryConfig {
        ca_file: Some(bad_ca),
        ..config
    };
    assert!(Directory::from_config(&config, &DirectoryClients::new()).is_err());
}

/// A `tracing` writer into memory.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Logs {
    type Writer = Logs;
    fn make_writer(&'a self) -> Logs {
        self.clone()
    }
}
