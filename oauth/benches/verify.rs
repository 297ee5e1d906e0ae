//! Per-request cost of bearer verification against header-secret authentication (a
//! constant-time compare with `subtle`, as the host does for `HEADER` auth), in one run:
//! - `*_cached_key`: a token seen for the first time, its key cached (signature and claims
//!   checked in full): the tokens cycle through more than the verified-token cache holds, so
//!   none is remembered when it comes round again;
//! - `rs256_same_token`: the same token again (Okta reuses one token until it expires): the
//!   verified-token cache's hit path.
//!
//! The issuer is a real `FakeIssuer` on loopback, contacted once when the verifier is built; the
//! measured loop never touches the network. Run: `cargo bench -p hookbox-oauth --bench verify`.

#![allow(clippy::unwrap_used)] // a bench that cannot set up should stop loudly

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use hookbox_oauth::Verifier;
use hookbox_oauth::testing::{FakeIssuer, FakeIssuerOptions, KeyKind};
use hookbox_oauth::verify::TOKEN_CACHE_CAPACITY;
use subtle::ConstantTimeEq;

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("auth");

    for (name, kind) in [
        ("rs256_cached_key", KeyKind::Rs256),
        ("es256_cached_key", KeyKind::Es256),
    ] {
        let (_issuer, verifier, headers) = rt.block_on(async {
            let issuer = FakeIssuer::start_with(FakeIssuerOptions {
                key: kind,
                ..FakeIssuerOptions::default()
            })
            .await
            .unwrap();
            let verifier = Verifier::new(issuer.config().validate().unwrap(), issuer.client())
                .await
                .unwrap();
            // Distinct tokens (by `jti`), more than the verified-token cache holds.
            let kid = issuer.current_kid();
            let headers: Vec<String> = (0..TOKEN_CACHE_CAPACITY + 904)
                .map(|i| {
                    let mut claims = issuer.claims();
                    claims["jti"] = format!("AT.bench.{i}").into();
                    format!("Bearer {}", issuer.mint(&claims, &kid))
                })
                .collect();
            (issuer, verifier, headers)
        });
        assert!(rt.block_on(verifier.verify(&headers[0])).is_ok());
        let (all, v) = (&headers, &verifier);
        let mut next = 0;
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                next = (next + 1) % all.len();
                let header: &String = &all[next];
                async move { black_box(v.verify(black_box(header)).await.is_ok()) }
            })
        });
        if kind == KeyKind::Rs256 {
            let header = &headers[0];
            assert!(rt.block_on(verifier.verify(header)).is_ok());
            group.bench_function("rs256_same_token", |b| {
                b.to_async(&rt)
                    .iter(|| async { black_box(verifier.verify(black_box(header)).await.is_ok()) })
            });
        }
    }

    // Header secret: the presented value against two configured secrets (rotation), each
    // compared in constant time, as the host's header auth does.
    let secrets: [&[u8]; 2] = [
        b"aW4gYSBoZWFkZXIgc2VjcmV0IHRoZXJlIGFyZSA0OCBieXRlcw",
        b"c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24gb2YgdGhlIGZpcnN0",
    ];
    let presented = b"c2Vjb25kIHNlY3JldCBmb3Igcm90YXRpb24gb2YgdGhlIGZpcnN0".to_vec();
    group.bench_function("header_secret_ct_eq", |b| {
        b.iter(|| {
            let presented = black_box(&presented[..]);
            let ok = secrets
                .iter()
                .fold(subtle::Choice::from(0), |acc, s| acc | s.ct_eq(presented));
            black_box(bool::from(ok))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
