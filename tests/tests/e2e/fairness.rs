//! A tenant whose plugin spins to its deadline at its full concurrency does
//! not take the CPU from another tenant: with two CPU slots and at most one
//! per tenant, the spinner's calls queue behind its one slot while the other
//! tenant's requests are all answered correctly; and every spinning request
//! is still answered at its deadline with the usual error. No timing is
//! asserted: who runs and who waits is read from the scheduler.

use bytes::Bytes;
use hookbox_tests::{
    Proto, TenantSpec, TestServer, fresh_sample, login_conflict_wasm, misbehave_wasm,
    sample_request,
};
use hyper::Method;

/// The spinner's concurrency: every request it may have in flight.
const SPINNING: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_tenant_at_its_concurrency_leaves_the_other_tenant_served() {
    let spinner = TenantSpec::new("spinner", misbehave_wasm())
        .setting("mode", "loop")
        // Long, so the spinning calls are surely still in flight while the
        // other tenant is served (only a guard: nothing below waits for it).
        .deadline("2500ms")
        .max_concurrency(SPINNING as u32);
    let good = TenantSpec::new("good", login_conflict_wasm());
    let server = TestServer::builder()
        .tenant(spinner.clone())
        .tenant(good.clone())
        .cpu_slots(2, 1)
        .start()
        .await;
    let cpu = server.cpu();
    assert_eq!((cpu.slots(), cpu.per_tenant()), (2, 1));

    let mut spinning = Vec::new();
    for _ in 0..SPINNING {
        spinning.push(server.hold_permit("spinner", spinner.secret()).await);
    }
    // The cap holds: one spinning call runs, the others queue for the slot
    // (each takes its turn at every tick, FIFO among themselves; the one
    // that just gave the slot back may be between yield and queue).
    while cpu.waiting() < SPINNING - 2 {
        assert!(
            spinning.iter().all(|h| !h.is_finished()),
            "the spinning calls ended and never queued"
        );
        tokio::task::yield_now().await;
    }

    // The other tenant is answered, correctly, every time, meanwhile.
    let client = server.client();
    for _ in 0..20 {
        let reply = client.hook("good", good.secret(), &sample_request()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.new_login().as_deref(),
            Some("sally2.admin2.272ed9@clouditude.net")
        );
        assert!(cpu.running() <= 2, "{} slots held of 2", cpu.running());
    }
    let still_spinning = spinning.iter().filter(|h| !h.is_finished()).count();

    // Every spinning request is answered at its deadline, with its error.
    for held in spinning {
        let reply = held.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.error_summary().as_deref(),
            Some("hookbox: the plugin exceeded its deadline"),
            "{reply:?}"
        );
    }
    assert_eq!(
        still_spinning, SPINNING,
        "spinning calls ended before the deadline"
    );
    // And nothing is left holding or awaiting the CPU.
    assert_eq!((cpu.running(), cpu.waiting()), (0, 0));
}

/// A tenant whose call spins past the heavy mark (10 ms of CPU) is heavy
/// from then on: its next call runs on the background threads and is still
/// answered at its deadline with the usual error, while the other tenant's
/// calls stay light and run in place. Read from the scheduler, the
/// runtime's count of background calls, and `GET /metrics`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spinning_tenant_turns_heavy_and_runs_in_the_background_still_answered() {
    let spinner = TenantSpec::new("spinner", misbehave_wasm())
        .setting("mode", "loop")
        .deadline("300ms");
    let good = TenantSpec::new("good", login_conflict_wasm());
    let server = TestServer::builder()
        .tenant(spinner.clone())
        .tenant(good.clone())
        .start()
        .await;
    let (cpu, runtime, client) = (server.cpu(), server.runtime(), server.client());
    let spin_call = async || {
        let reply = client
            .hook("spinner", spinner.secret(), &fresh_sample())
            .await;
        assert_eq!(
            reply.error_summary().as_deref(),
            Some("hookbox: the plugin exceeded its deadline"),
            "{reply:?}"
        );
    };
    let good_call = async || {
        let reply = client.hook("good", good.secret(), &fresh_sample()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.new_login().as_deref(),
            Some("sally2.admin2.272ed9@clouditude.net")
        );
    };

    // Light tenants run in place.
    good_call().await;
    assert!(!cpu.is_heavy("good") && !cpu.is_heavy("spinner"));
    assert_eq!(runtime.heavy_calls(), 0);

    // The first spinning call runs in place (its tenant was light when it
    // started) and marks its tenant heavy.
    spin_call().await;
    assert!(cpu.is_heavy("spinner"));
    assert_eq!(runtime.heavy_calls(), 0);

    // Its next call runs in the background, answered alike.
    spin_call().await;
    assert_eq!(runtime.heavy_calls(), 1);

    // The other tenant is still light and in place.
    good_call().await;
    assert!(!cpu.is_heavy("good"));
    assert_eq!(runtime.heavy_calls(), 1);

    let mut conn = client.connect(Proto::H1).await;
    let metrics = conn
        .send(client.request(Method::GET, "/metrics", Bytes::new()))
        .await;
    assert_eq!(metrics.status, 200);
    let text = String::from_utf8_lossy(&metrics.body);
    for line in [
        r#"hookbox_tenant_heavy{tenant="spinner"} 1"#,
        r#"hookbox_tenant_heavy{tenant="good"} 0"#,
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }
}
