// In tests a panic is the failure report, with the line that failed.
#![allow(clippy::unwrap_used)]

use hookbox_sdk::{Command, Host, Level, Request, RequestBuilder, Scalar, Value};

use super::*;

fn no_settings() -> Host {
    Host::fake(Vec::<(String, String)>::new())
}

fn conflict(login: &str) -> RequestBuilder {
    Request::builder()
        .user_attr("login", login)
        .conflict("login")
}

fn run(request: &Request) -> Response {
    match resolve(request, &no_settings()) {
        Ok(response) => response,
        Err(summary) => panic!("unexpected error: {summary}"),
    }
}

/// The new login, checking on the way that the answer has exactly Okta's shape.
fn new_login(response: &Response) -> String {
    let [Command::UserProfileUpdate(profile)] = response.commands() else {
        panic!(
            "expected one user-profile-update, got {:?}",
            response.commands()
        );
    };
    let [attribute] = profile.as_slice() else {
        panic!("expected one attribute, got {profile:?}");
    };
    assert_eq!(attribute.name, "login");
    let Value::Text(login) = &attribute.value else {
        panic!("login is not text: {:?}", attribute.value);
    };
    assert_eq!(response.debug_value("resolver"), Some("login-conflict"));
    login.clone()
}

fn login_for(request: &Request) -> String {
    new_login(&run(request))
}

fn rule_of(request: &Request) -> String {
    run(request)
        .debug_value("rule")
        .map(str::to_owned)
        .unwrap_or_default()
}

fn assert_valid_local(local: &str) {
    assert!(!local.is_empty(), "empty local part");
    assert!(local.len() <= MAX_LOCAL_PART, "too long: {local:?}");
    assert!(
        local
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-'),
        "bad character in {local:?}"
    );
    for edge in [local.as_bytes()[0], local.as_bytes()[local.len() - 1]] {
        assert!(edge != b'.' && edge != b'-', "bad edge in {local:?}");
    }
    assert!(!local.contains(".."), "double dot in {local:?}");
}

fn sample_fixture() -> Request {
    // `/work/shared/okta/fixtures/sample-request.json`, as the host decodes it.
    Request::builder()
        .event_id("JUGOUiYZTaKPmH6db0nDag")
        .conflict("login")
        .app_user_attr("firstName", "Sally2")
        .app_user_attr("lastName", "Admin2")
        .app_user_attr("mobilePhone", Value::Null)
        .app_user_attr("accountType", "PRO")
        .app_user_attr("secondEmail", Value::Null)
        .app_user_attr("failProvisioning", Value::Null)
        .app_user_attr("failDeprovisioning", Value::Null)
        .app_user_attr("externalId", "user221")
        .app_user_attr(
            "groups",
            vec![
                Scalar::from("everyone@clouditude.net"),
                Scalar::from("tech@clouditude.net"),
            ],
        )
        .app_user_attr("userName", "administrator2")
        .app_user_attr("email", "sally.admin@clouditude.net")
        .user_attr("lastName", "Admin2")
        .user_attr("login", "sally.admin@clouditude.net")
        .user_attr("firstName", "Sally2")
        .user_attr("email", "sally.admin@clouditude.net")
        .build()
}

#[test]
fn george_gets_his_middle_name_infixed() {
    let request = conflict("george.smith@example.com")
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "Alexander")
        .app_user_attr("lastName", "Smith")
        .build();
    let host = no_settings();
    let response = resolve(&request, &host).unwrap();
    assert_eq!(new_login(&response), "george.alexander.smith@example.com");
    assert_eq!(
        response.debug_context(),
        [
            ("resolver".to_owned(), "login-conflict".to_owned()),
            ("rule".to_owned(), "middle-name".to_owned()),
            ("claim".to_owned(), "claimed".to_owned())
        ]
    );
    let logs = host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].level, Level::Debug);
    assert_eq!(logs[0].message, "login claimed by rule middle-name");
}

#[test]
fn fnv1a64_matches_the_reference_vectors() {
    let hash = |s: &str| {
        let mut h = Fnv1a64::new();
        h.write(s.as_bytes());
        h.finish()
    };
    assert_eq!(hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(hash("a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(hash("foobar"), 0x8594_4171_f739_67e8);
}

#[test]
fn sample_fixture_gets_a_hashed_suffix_from_external_id() {
    let request = sample_fixture();
    let mut h = Fnv1a64::new();
    h.write(b"user221");
    let suffix = format!("{:06x}", h.finish() >> 40);
    assert_eq!(identity_suffix("user221", 0), suffix);
    let login = login_for(&request);
    println!("sample fixture: user221 -> {suffix}, new login {login}");
    assert_eq!(login, format!("sally2.admin2.{suffix}@clouditude.net"));
    assert_eq!(login, "sally2.admin2.272ed9@clouditude.net");
    assert_eq!(rule_of(&request), "hashed-suffix");
}

#[test]
fn logs_name_the_rule_but_never_the_user() {
    let host = no_settings();
    resolve(&sample_fixture(), &host).unwrap();
    let logs = host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].message, "login claimed by rule hashed-suffix");
    for line in logs {
        for personal in ["sally", "admin", "user221", "clouditude"] {
            assert!(!line.message.to_lowercase().contains(personal));
        }
    }
}

#[test]
fn attribute_names_are_settings() {
    let request = conflict("g.s@example.com")
        .app_user_attr("given", "George")
        .app_user_attr("second", "Alexander")
        .app_user_attr("family", "Smith")
        .app_user_attr("firstName", "Wrong")
        .app_user_attr("employeeNumber", "E1")
        .build();
    let host = Host::fake([
        ("first_name_attribute", "given"),
        ("middle_name_attribute", "second"),
        ("last_name_attribute", "family"),
    ]);
    let response = resolve(&request, &host).unwrap();
    assert_eq!(new_login(&response), "george.alexander.smith@example.com");

    // The unique attribute too.
    let without_middle = conflict("g.s@example.com")
        .app_user_attr("firstName", "George")
        .app_user_attr("lastName", "Smith")
        .app_user_attr("employeeNumber", "E1")
        .build();
    let host = Host::fake([("unique_attribute", "employeeNumber")]);
    let response = resolve(&without_middle, &host).unwrap();
    assert_eq!(
        new_login(&response),
        format!("george.smith.{}@example.com", identity_suffix("E1", 0))
    );
}

#[test]
fn blank_settings_mean_the_defaults() {
    let request = conflict("g.s@example.com")
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "A")
        .app_user_attr("lastName", "Smith")
        .build();
    let host = Host::fake([("first_name_attribute", " "), ("last_name_attribute", "")]);
    let response = resolve(&request, &host).unwrap();
    assert_eq!(new_login(&response), "george.a.smith@example.com");
}

#[test]
fn app_user_names_take_precedence_over_the_user_profile() {
    let request = conflict("x@example.com")
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "Alexander")
        .app_user_attr("lastName", "Smith")
        .user_attr("firstName", "Jorge")
        .user_attr("middleName", "Alejandro")
        .user_attr("lastName", "Smyth")
        .build();
    assert_eq!(login_for(&request), "george.alexander.smith@example.com");
}

#[test]
fn missing_app_user_names_fall_back_to_the_user_profile() {
    let request = conflict("x@example.com")
        .app_user_attr("firstName", Value::Null)
        .app_user_attr("middleName", "   ")
        .app_user_attr("lastName", "Иванов")
        .user_attr("firstName", "George")
        .user_attr("middleName", "Alexander")
        .user_attr("lastName", "Smith")
        .build();
    assert_eq!(login_for(&request), "george.alexander.smith@example.com");
}

#[test]
fn names_are_normalised() {
    let cases = [
        ("Mary Ann", "mary-ann"),
        ("Jean-Luc", "jean-luc"),
        ("O'Brien", "obrien"),
        ("O\u{2019}Brien", "obrien"),
        ("d`Artagnan", "dartagnan"),
        ("  van  der   Berg ", "van-der-berg"),
        ("a_b.c", "a-b-c"),
        ("--Jean -- Luc--", "jean-luc"),
        ("José", "jose"),
        ("Ñuñez", "nunez"),
        ("Müller", "muller"),
        ("Weiß", "weiss"),
        ("STRAẞE", "strasse"),
        ("Ærøskøbing", "aeroskobing"),
        ("Œuvre", "oeuvre"),
        ("Łukasz", "lukasz"),
        ("Đorđe", "dorde"),
        ("Þór", "thor"),
        ("Åsa", "asa"),
        ("İsmail", "ismail"),
        ("Ștefan Țurcanu", "stefan-turcanu"),
        ("Dvořák", "dvorak"),
        ("José\u{301}", "jose"),
        ("Zoë 😀 Smith", "zoe-smith"),
        ("Иван", ""),
        ("李", ""),
        ("李 Wei", "wei"),
        ("Anna 李 Maria", "anna-maria"),
        ("R2-D2", "r2-d2"),
        ("ＡＢＣ１", "abc1"),
        ("", ""),
        ("   ", ""),
        ("'", ""),
        ("-", ""),
    ];
    for (input, expected) in cases {
        assert_eq!(normalise_name(input), expected, "normalising {input:?}");
    }
}

#[test]
fn every_latin_1_and_extended_a_letter_is_transliterated() {
    let letters = ('\u{C0}'..='\u{17F}').filter(|c| c.is_alphabetic());
    for c in letters {
        let normalised = normalise_name(&c.to_string());
        assert!(
            !normalised.is_empty() && normalised.bytes().all(|b| b.is_ascii_lowercase()),
            "{c:?} (U+{:04X}) became {normalised:?}",
            u32::from(c)
        );
    }
}

#[test]
fn odd_name_values_count_as_absent() {
    for odd in [
        Value::Null,
        Value::Integer(3),
        Value::Float(1.5),
        Value::Boolean(true),
        Value::Array(vec![Scalar::from("Alexander")]),
        Value::json(r#"{"a":"Alexander"}"#),
        Value::from(""),
        Value::from(" \t "),
        Value::from("Σ"),
    ] {
        let request = conflict("george.smith@example.com")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", odd.clone())
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", "42")
            .build();
        assert_eq!(
            login_for(&request),
            format!("george.smith.{}@example.com", identity_suffix("42", 0)),
            "middle name {odd:?}"
        );
    }
}

#[test]
fn normalised_names_go_into_the_login() {
    let request = conflict("x@example.com")
        .app_user_attr("firstName", "Mary Ann")
        .app_user_attr("middleName", "D'Arcy-Lévesque")
        .app_user_attr("lastName", "Ó Súilleabháin")
        .build();
    assert_eq!(
        login_for(&request),
        "mary-ann.darcy-levesque.o-suilleabhain@example.com"
    );
}

#[test]
fn the_domain_follows_the_last_at_sign_verbatim() {
    let request = conflict("\"odd@local\"@Sub.Example.COM")
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "Alexander")
        .app_user_attr("lastName", "Smith")
        .build();
    assert_eq!(
        login_for(&request),
        "george.alexander.smith@Sub.Example.COM"
    );
}

#[test]
fn non_latin_names_fall_back_to_the_login_base() {
    let request = conflict("ivan.petrov@example.ru")
        .app_user_attr("firstName", "Иван")
        .app_user_attr("middleName", "Сергеевич")
        .app_user_attr("lastName", "Петров")
        .app_user_attr("externalId", "u-7")
        .build();
    assert_eq!(
        login_for(&request),
        format!("ivan.petrov.{}@example.ru", identity_suffix("u-7", 0))
    );
    assert_eq!(rule_of(&request), "login-base-hashed-suffix");
}

#[test]
fn a_missing_last_name_uses_the_login_base_and_the_middle_name() {
    let request = conflict("J.O'Neil+Smith@example.com")
        .app_user_attr("firstName", "John")
        .app_user_attr("middleName", "Paul")
        .build();
    assert_eq!(login_for(&request), "j.oneil-smith.paul@example.com");
    assert_eq!(rule_of(&request), "login-base-middle-name");
}

#[test]
fn an_unusable_login_base_becomes_user() {
    let request = conflict("Пётр@example.com")
        .app_user_attr("externalId", "9")
        .build();
    assert_eq!(
        login_for(&request),
        format!("user.{}@example.com", identity_suffix("9", 0))
    );
    let request = conflict("@example.com").build();
    let login = login_for(&request);
    assert!(login.starts_with("user.") && login.ends_with("@example.com"));
}

#[test]
fn long_names_are_cut_to_64_bytes_keeping_the_suffix() {
    let long = "Bartholomew-Maximilian ".repeat(6);
    let request = conflict("x@example.com")
        .app_user_attr("firstName", long.as_str())
        .app_user_attr("lastName", long.as_str())
        .app_user_attr("externalId", "e")
        .build();
    let login = login_for(&request);
    let (local, domain) = login.rsplit_once('@').unwrap();
    assert_eq!(domain, "example.com");
    assert_valid_local(local);
    assert!(local.ends_with(&format!(".{}", identity_suffix("e", 0))));
    assert!(local.starts_with("bartholomew-maximilian-bartholomew"));
    assert!(local.len() >= MAX_LOCAL_PART - 1, "cut too much: {local}");

    let request = conflict("x@example.com")
        .app_user_attr("firstName", long.as_str())
        .app_user_attr("middleName", long.as_str())
        .app_user_attr("lastName", long.as_str())
        .build();
    let login = login_for(&request);
    let local = login.rsplit_once('@').unwrap().0;
    assert_valid_local(local);
}

#[test]
fn the_cut_never_leaves_a_dot_or_dash_at_the_end() {
    // Vary the first name's length so the cut falls on every kind of position.
    for n in 1..70 {
        let first = "a".repeat(n);
        let request = conflict("x@example.com")
            .app_user_attr("firstName", first.as_str())
            .app_user_attr("middleName", "b-c")
            .app_user_attr("lastName", "d-e-f-g-h-i-j-k-l-m-n-o-p-q-r-s-t-u-v-w-x-y-z")
            .build();
        let login = login_for(&request);
        assert_valid_local(login.rsplit_once('@').unwrap().0);
    }
}

#[test]
fn answers_are_deterministic() {
    let request = sample_fixture();
    let first = run(&request);
    for _ in 0..10 {
        assert_eq!(run(&request), first);
    }
    // Attribute order carries no meaning, so it must not change the answer
    // when the whole profile is the identity.
    let a = conflict("j.s@example.com")
        .app_user_attr("firstName", "John")
        .app_user_attr("lastName", "Smith")
        .app_user_attr("city", "Paris")
        .build();
    let b = conflict("j.s@example.com")
        .app_user_attr("city", "Paris")
        .app_user_attr("lastName", "Smith")
        .app_user_attr("firstName", "John")
        .build();
    assert_eq!(login_for(&a), login_for(&b));
}

#[test]
fn two_john_smiths_get_different_logins() {
    let john = |id: &str| {
        conflict("john.smith@example.com")
            .app_user_attr("firstName", "John")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", id)
            .build()
    };
    let (one, two) = (login_for(&john("1001")), login_for(&john("1002")));
    assert_ne!(one, two);
    assert!(one.starts_with("john.smith.") && two.starts_with("john.smith."));

    // Without an external id, the rest of the row tells them apart.
    let john = |city: &str| {
        conflict("john.smith@example.com")
            .app_user_attr("firstName", "John")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", Value::Null)
            .app_user_attr("city", city)
            .build()
    };
    assert_ne!(login_for(&john("Paris")), login_for(&john("Lyon")));
}

#[test]
fn identity_rendering() {
    let request = Request::builder()
        .app_user_attr("z", "last")
        .app_user_attr("externalId", Value::Null)
        .app_user_attr("a", vec![Scalar::Integer(1), Scalar::Null])
        .app_user_attr("q\"", 2.5)
        .build();
    assert_eq!(
        identity(&request, "externalId"),
        r#"{"a":[1,null],"externalId":null,"q\"":2.5,"z":"last"}"#
    );
    let numeric = Request::builder()
        .app_user_attr("externalId", 221_i64)
        .build();
    assert_eq!(identity(&numeric, "externalId"), "221");
    let text = Request::builder()
        .app_user_attr("externalId", "user221")
        .build();
    assert_eq!(identity(&text, "externalId"), "user221");
    assert_eq!(identity(&Request::builder().build(), "externalId"), "{}");
}

#[test]
fn the_new_login_always_differs_from_the_conflicting_one() {
    let request = conflict("George.Alexander.Smith@example.com")
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "Alexander")
        .app_user_attr("lastName", "Smith")
        .app_user_attr("externalId", "g1")
        .build();
    // The infix is the conflicting login itself: the next candidate, the
    // hashed suffix, is answered.
    assert_eq!(
        login_for(&request),
        format!("george.smith.{}@example.com", identity_suffix("g1", 0))
    );
    assert_eq!(rule_of(&request), "hashed-suffix");

    // A user imported again whose login this plugin made the first time.
    let earlier = format!("john.smith.{}@example.com", identity_suffix("j1", 0));
    let request = conflict(&earlier)
        .app_user_attr("firstName", "John")
        .app_user_attr("lastName", "Smith")
        .app_user_attr("externalId", "j1")
        .build();
    let login = login_for(&request);
    assert_ne!(login, earlier);
    assert_eq!(
        login,
        format!("john.smith.{}@example.com", identity_suffix("j1", 1))
    );
    assert_ne!(identity_suffix("j1", 0), identity_suffix("j1", 1));
}

#[test]
fn no_login_conflict_means_no_commands() {
    let request = Request::builder()
        .app_user_attr("firstName", "George")
        .app_user_attr("middleName", "Alexander")
        .app_user_attr("lastName", "Smith")
        .user_attr("login", "george.smith@example.com")
        .build();
    assert_eq!(run(&request), Response::none());

    let other = Request::builder()
        .app_user_attr("firstName", "George")
        .user_attr("login", "george.smith@example.com")
        .conflict("email")
        .build();
    assert_eq!(run(&other), Response::none());
}

#[test]
fn a_conflict_without_a_usable_login_is_an_error() {
    let no_login = Request::builder()
        .conflict("login")
        .app_user_attr("firstName", "George")
        .build();
    let numeric_login = conflict("x").user_attr("login", 42_i64).build();
    let no_at = conflict("george.smith").build();
    let no_domain = conflict("george.smith@").build();
    for request in [no_login, numeric_login, no_at, no_domain] {
        let summary = resolve(&request, &no_settings()).unwrap_err();
        assert!(summary.starts_with("login-conflict: "), "{summary}");
        assert!(!summary.contains("george"), "{summary}");
    }
    let summary = resolve(&conflict("george.smith").build(), &no_settings()).unwrap_err();
    assert_eq!(
        summary,
        "login-conflict: the conflicting login has no domain"
    );
}

/// xorshift64*: a fixed-seed generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn name(&mut self) -> String {
        const POOL: &[char] = &[
            'a', 'Z', '0', '9', ' ', '-', '_', '.', '\'', '’', '@', '+', '/', '\t', 'é', 'ß', 'Æ',
            'ø', 'Ł', 'ĳ', 'И', '李', '😀', '\u{301}', '\u{0}', '"', '\\', 'ǅ', 'İ', '－', 'ａ',
            '·', '‐', '\u{A0}', 'ŉ', 'ſ',
        ];
        let len = self.below(90);
        (0..len).map(|_| POOL[self.below(POOL.len())]).collect()
    }
}

#[test]
fn the_local_part_is_always_valid() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in 0..3000 {
        let mut builder = conflict(&format!("{}@example.com", rng.name()));
        for attr in ["firstName", "middleName", "lastName"] {
            match rng.below(4) {
                0 => {}
                1 => builder = builder.app_user_attr(attr, Value::Null),
                2 => builder = builder.app_user_attr(attr, rng.name()),
                _ => builder = builder.user_attr(attr, rng.name()),
            }
        }
        if rng.below(2) == 0 {
            builder = builder.app_user_attr("externalId", rng.name());
        }
        let request = builder.build();
        let login = login_for(&request);
        let (local, domain) = login.rsplit_once('@').unwrap();
        assert_eq!(domain, "example.com", "case {i}");
        assert_valid_local(local);
        let conflicting = request.login().unwrap().rsplit_once('@').unwrap().0;
        assert!(
            !local.eq_ignore_ascii_case(conflicting),
            "case {i}: {local}"
        );
        assert_eq!(login_for(&request), login, "case {i}: not deterministic");
    }
}

#[test]
fn normalised_names_are_always_valid_pieces() {
    let mut rng = Rng(42);
    for _ in 0..3000 {
        let name = rng.name();
        let piece = normalise_name(&name);
        assert!(
            piece
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name:?} -> {piece:?}"
        );
        assert!(!piece.starts_with('-') && !piece.ends_with('-') && !piece.contains("--"));
    }
}

// ---- The claim store, the directory and the event handler (WIT 0.2.0) ----

mod stateful {
    use hookbox_sdk::{
        Actor, ClaimResult, Claims, DirectoryError, Event, FakeClaims, FakeDirectory, LogEvent,
        StoreError, SyncEvent,
    };

    use super::*;

    fn george(id: &str) -> Request {
        conflict("george.smith@example.com")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", "Alexander")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", id)
            .build()
    }

    fn host_with(claims: &FakeClaims) -> Host {
        no_settings().with_claims(claims.clone())
    }

    fn answer(request: &Request, host: &Host) -> (String, String, String) {
        let response = resolve(request, host).unwrap();
        (
            new_login(&response),
            response.debug_value("rule").unwrap_or_default().to_owned(),
            response.debug_value("claim").unwrap_or_default().to_owned(),
        )
    }

    #[test]
    fn two_owners_with_the_same_full_name_get_distinct_logins() {
        let claims = FakeClaims::new();
        let host = host_with(&claims);
        let one = answer(&george("u1"), &host);
        let two = answer(&george("u2"), &host);
        assert_eq!(
            one,
            (
                "george.alexander.smith@example.com".into(),
                "middle-name".into(),
                "claimed".into()
            )
        );
        assert_eq!(
            two,
            (
                format!("george.smith.{}@example.com", identity_suffix("u2", 0)),
                "hashed-suffix".into(),
                "claimed".into()
            )
        );
        assert_eq!(
            claims
                .owner("george.alexander.smith@example.com")
                .as_deref(),
            Some("id:u1")
        );
        assert_eq!(
            claims.owner("owner:id:u2"),
            Some(format!(
                "george.smith.{}@example.com",
                identity_suffix("u2", 0)
            ))
        );
    }

    #[test]
    fn fifty_users_sharing_five_names_get_fifty_distinct_logins_again_and_again() {
        let claims = FakeClaims::new();
        let names = [
            ("George", Some("Alexander"), "Smith"),
            ("George", None, "Smith"),
            ("Mary", Some("Ann"), "Lee"),
            ("Mary", None, "Lee"),
            ("José", Some("María"), "Núñez"),
        ];
        let request = |i: usize| {
            let (first, middle, last) = names[i % names.len()];
            let mut b = conflict("taken@example.com")
                .app_user_attr("firstName", first)
                .app_user_attr("lastName", last)
                .app_user_attr("externalId", format!("e{i}"));
            if let Some(m) = middle {
                b = b.app_user_attr("middleName", m);
            }
            b.build()
        };
        let host = host_with(&claims);
        let first: Vec<String> = (0..50).map(|i| answer(&request(i), &host).0).collect();
        let distinct: std::collections::BTreeSet<_> =
            first.iter().map(|l| l.to_ascii_lowercase()).collect();
        assert_eq!(distinct.len(), 50, "{first:?}");
        // Interleaved re-runs, in another order: each user gets its login again.
        for i in (0..50).rev() {
            let (login, _, claim) = answer(&request(i), &host);
            assert_eq!(login, first[i]);
            assert_eq!(claim, "already-yours");
        }
    }

    #[test]
    fn the_same_owner_gets_the_same_login_on_a_retry_or_a_rerun() {
        let claims = FakeClaims::new();
        let host = host_with(&claims);
        answer(&george("u1"), &host);
        let (login, rule, claim) = answer(&george("u2"), &host);
        assert_eq!(claim, "claimed");
        // A retry with the same event id, a re-run with another.
        let rerun = conflict("george.smith@example.com")
            .event_id("another-event")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", "Alexander")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", "u2")
            .build();
        for request in [george("u2"), rerun.clone()] {
            assert_eq!(
                answer(&request, &host_with(&claims)),
                (login.clone(), rule.clone(), "already-yours".into())
            );
        }
        // An operator releases the infix u1 holds: u2 still keeps its own.
        assert_eq!(
            claims.release("george.alexander.smith@example.com", "id:u1"),
            Ok(true)
        );
        assert_eq!(answer(&rerun, &host).0, login);
    }

    #[test]
    fn logins_are_claimed_case_insensitively() {
        let claims = FakeClaims::new();
        claims.insert("george.alexander.smith@example.com", "id:other");
        let request = conflict("george.smith@EXAMPLE.com")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", "Alexander")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", "u1")
            .build();
        let (login, rule, _) = answer(&request, &host_with(&claims));
        assert_eq!(
            login,
            format!("george.smith.{}@EXAMPLE.com", identity_suffix("u1", 0))
        );
        assert_eq!(rule, "hashed-suffix");
        assert_eq!(
            claims.owner(&login.to_ascii_lowercase()).as_deref(),
            Some("id:u1")
        );
    }

    #[test]
    fn taken_suffixes_go_to_further_rounds() {
        let claims = FakeClaims::new();
        claims.insert("george.alexander.smith@example.com", "id:x");
        claims.insert(
            format!("george.smith.{}@example.com", identity_suffix("u1", 0)),
            "id:y",
        );
        let (login, rule, _) = answer(&george("u1"), &host_with(&claims));
        assert_eq!(
            login,
            format!("george.smith.{}@example.com", identity_suffix("u1", 1))
        );
        assert_eq!(rule, "hashed-suffix+rehashed");
    }

    #[test]
    fn every_candidate_taken_is_an_error() {
        let claims = FakeClaims::new();
        let local_parts = candidates(&george("u1"), "george.smith", "u1");
        assert_eq!(local_parts.len(), 18);
        for c in &local_parts {
            claims.insert(format!("{}@example.com", c.local), "id:someone-else");
        }
        assert_eq!(
            resolve(&george("u1"), &host_with(&claims)).unwrap_err(),
            "login-conflict: every candidate login is taken"
        );
    }

    #[test]
    fn a_failing_store_answers_the_stateless_hashed_suffix_login() {
        let expected = format!("george.smith.{}@example.com", identity_suffix("u1", 0));
        // Failing from the first call, and failing half way.
        for successes in [0, 1, 2] {
            let claims = FakeClaims::new();
            claims.insert("george.alexander.smith@example.com", "id:other");
            claims.fail_after(successes, StoreError::Unavailable("redis down".into()));
            let host = host_with(&claims);
            let response = resolve(&george("u1"), &host).unwrap();
            assert_eq!(new_login(&response), expected, "after {successes} calls");
            assert_eq!(response.debug_value("rule"), Some("hashed-suffix"));
            assert_eq!(response.debug_value("claim"), Some("unavailable"));
            let warnings: Vec<_> = host
                .logs()
                .into_iter()
                .filter(|l| l.level == Level::Warn)
                .collect();
            assert_eq!(warnings.len(), 1);
            assert_eq!(
                warnings[0].message,
                "claim store failed (unavailable): answering the stateless hashed-suffix login"
            );
            assert!(!warnings[0].message.contains("redis down"));
        }
        // Two owners still differ without the store.
        let claims = FakeClaims::new();
        claims.fail_with(StoreError::Timeout);
        let host = host_with(&claims);
        assert_ne!(
            answer(&george("u1"), &host).0,
            answer(&george("u2"), &host).0
        );
    }

    #[test]
    fn on_store_error_error_answers_an_error_summary() {
        let claims = FakeClaims::new();
        claims.fail_with(StoreError::Timeout);
        let host = Host::fake([("on_store_error", "error")]).with_claims(claims.clone());
        assert_eq!(
            resolve(&george("u1"), &host).unwrap_err(),
            "login-conflict: the claim store is unavailable, so no login could be reserved"
        );
        // With a working store the setting changes nothing.
        let host = Host::fake([("on_store_error", "error")]).with_claims(FakeClaims::new());
        assert_eq!(
            answer(&george("u1"), &host).0,
            "george.alexander.smith@example.com"
        );
    }

    #[test]
    fn the_directory_skips_logins_other_okta_users_hold() {
        let claims = FakeClaims::new();
        let okta = FakeDirectory::new().with_user("George.Alexander.Smith@example.com", "00u9");
        let host = host_with(&claims).with_directory(okta.clone());
        let response = resolve(&george("u1"), &host).unwrap();
        assert_eq!(
            new_login(&response),
            format!("george.smith.{}@example.com", identity_suffix("u1", 0))
        );
        assert_eq!(response.debug_value("directory"), Some("checked"));
        assert_eq!(okta.lookups(), 2);
        // Nothing was claimed for the login Okta's user holds.
        assert_eq!(claims.owner("george.alexander.smith@example.com"), None);

        // Held by the matched user itself: not a conflict.
        let mine = conflict("george.smith@example.com")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", "Alexander")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("externalId", "u7")
            .user_id("00u9")
            .build();
        assert_eq!(
            answer(&mine, &host_with(&FakeClaims::new()).with_directory(okta)).0,
            "george.alexander.smith@example.com"
        );
    }

    #[test]
    fn a_recorded_login_now_held_in_okta_is_replaced() {
        let claims = FakeClaims::new();
        let first = answer(&george("u1"), &host_with(&claims)).0;
        assert_eq!(first, "george.alexander.smith@example.com");
        let okta = FakeDirectory::new().with_user(&first, "00u9");
        let (again, rule, claim) = answer(&george("u1"), &host_with(&claims).with_directory(okta));
        assert_eq!(
            again,
            format!("george.smith.{}@example.com", identity_suffix("u1", 0))
        );
        assert_eq!(
            (rule.as_str(), claim.as_str()),
            ("hashed-suffix", "claimed")
        );
        assert_eq!(claims.owner("owner:id:u1"), Some(again));
    }

    #[test]
    fn without_a_directory_or_with_a_failing_one_the_store_decides() {
        let not_configured =
            host_with(&FakeClaims::new()).with_directory(FakeDirectory::not_configured());
        let response = resolve(&george("u1"), &not_configured).unwrap();
        assert_eq!(new_login(&response), "george.alexander.smith@example.com");
        assert_eq!(response.debug_value("directory"), None);

        for (error, kind) in [
            (DirectoryError::RateLimited, "rate-limited"),
            (DirectoryError::TimedOut, "timed-out"),
            (DirectoryError::Denied, "denied"),
            (DirectoryError::Unavailable("503".into()), "unavailable"),
        ] {
            let okta = FakeDirectory::new().with_user("george.alexander.smith@example.com", "00u9");
            okta.fail_with(error);
            let host = host_with(&FakeClaims::new()).with_directory(okta.clone());
            let response = resolve(&george("u1"), &host).unwrap();
            assert_eq!(new_login(&response), "george.alexander.smith@example.com");
            assert_eq!(response.debug_value("directory"), Some(kind));
            // One failed lookup, then the directory is left alone.
            assert_eq!(okta.lookups(), 1);
            assert!(host.logs().iter().any(|l| l.level == Level::Warn
                && l.message
                    == format!(
                        "directory lookup failed ({kind}): going on with the claim store alone"
                    )));
        }
    }

    #[test]
    fn long_identities_are_hashed_into_the_owner() {
        assert_eq!(owner_for("u1"), "id:u1");
        let long = "x".repeat(481);
        let owner = owner_for(&long);
        assert!(owner.starts_with("id#") && owner.len() == 19, "{owner}");
        assert_eq!(owner_for(&"x".repeat(480)).len(), 483);
        // The whole-profile identity of a big row still claims.
        let claims = FakeClaims::new();
        let request = conflict("john.smith@example.com")
            .app_user_attr("firstName", "John")
            .app_user_attr("lastName", "Smith")
            .app_user_attr("notes", "n".repeat(2000))
            .build();
        let (_, _, claim) = answer(&request, &host_with(&claims));
        assert_eq!(claim, "claimed");
    }

    fn refused(uuid: &str, login: &str, user: &str) -> Event {
        Event::Sync(
            SyncEvent::builder()
                .uuid(uuid)
                .okta_user(Actor::new(user, "User").with_alternate_id("old@example.com"))
                .app_user(
                    Actor::new("app-user-1", "AppUser")
                        .with_alternate_id(login)
                        .with_display_name("George Smith"),
                )
                .application(Actor::new("0oa1", "AppInstance"))
                .debug("AppName", "HR CSV")
                .debug("error_code", "notUniqueWithinOrg")
                .debug("error_field", "login")
                .outcome("FAILURE", Some("login not unique"))
                .build(),
        )
    }

    #[test]
    fn the_event_handler_records_a_login_okta_refused() {
        let claims = FakeClaims::new();
        let host = host_with(&claims);
        handle(
            &refused("ev1", "George.Alexander.Smith@example.com", "00u5"),
            &host,
        )
        .unwrap();
        assert_eq!(
            claims
                .owner("george.alexander.smith@example.com")
                .as_deref(),
            Some("okta:00u5")
        );
        let logs = host.logs();
        assert_eq!(logs.len(), 1);
        assert_eq!(logs[0].level, Level::Info);
        assert_eq!(
            logs[0].message,
            "login not unique (event ev1, Okta user 00u5, app 0oa1): recorded as taken"
        );
        for personal in ["george", "smith", "example", "app-user-1"] {
            assert!(!logs[0].message.to_lowercase().contains(personal));
        }
        // The same delivery again changes nothing.
        handle(
            &refused("ev1", "george.alexander.smith@example.com", "00u5"),
            &host,
        )
        .unwrap();
        assert_eq!(claims.snapshot().len(), 1);
        // The next import does not hand it out.
        let (login, rule, _) = answer(&george("u1"), &host);
        assert_eq!(
            login,
            format!("george.smith.{}@example.com", identity_suffix("u1", 0))
        );
        assert_eq!(rule, "hashed-suffix");
    }

    #[test]
    fn a_refused_login_handed_to_an_import_is_taken_back() {
        let claims = FakeClaims::new();
        let host = host_with(&claims);
        let first = answer(&george("u1"), &host).0;
        handle(&refused("ev2", &first, "00u5"), &host).unwrap();
        assert_eq!(claims.owner(&first).as_deref(), Some("okta:00u5"));
        // The user's next import chooses again, and keeps the new login.
        let second = answer(&george("u1"), &host).0;
        assert_ne!(second, first);
        assert_eq!(answer(&george("u1"), &host).0, second);
        // Another Okta record is never moved.
        handle(&refused("ev3", &first, "00u6"), &host).unwrap();
        assert_eq!(claims.owner(&first).as_deref(), Some("okta:00u5"));
    }

    #[test]
    fn other_events_are_ignored_and_store_failures_are_retried() {
        let claims = FakeClaims::new();
        let host = host_with(&claims);
        let ok_sync = Event::Sync(
            SyncEvent::builder()
                .debug("AppName", "HR")
                .outcome("SUCCESS", None)
                .build(),
        );
        handle(&ok_sync, &host).unwrap();
        let other_error = Event::Sync(
            SyncEvent::builder()
                .debug("error_code", "notUniqueWithinOrg")
                .debug("error_field", "email")
                .build(),
        );
        handle(&other_error, &host).unwrap();
        let other = Event::Other(LogEvent {
            uuid: "o1".into(),
            published: String::new(),
            event_type: "user.lifecycle.create".into(),
            version: "0".into(),
            display_message: None,
            severity: "INFO".into(),
            actor: Actor::new("00u-admin", "User"),
            targets: vec![],
            outcome: None,
            debug_data: vec![
                ("error_code".into(), "notUniqueWithinOrg".into()),
                ("error_field".into(), "login".into()),
            ],
            raw: "{}".into(),
        });
        handle(&other, &host).unwrap();
        // Nothing to record without a login.
        let no_login = Event::Sync(
            SyncEvent::builder()
                .debug("error_code", "notUniqueWithinOrg")
                .debug("error_field", "LOGIN")
                .build(),
        );
        handle(&no_login, &host).unwrap();
        assert!(claims.snapshot().is_empty());
        assert_eq!(claims.calls(), 0);

        claims.fail_with(StoreError::Unavailable("down".into()));
        assert_eq!(
            handle(&refused("ev4", "a@example.com", "00u5"), &host).unwrap_err(),
            "login-conflict: the claim store failed (unavailable) while recording a login Okta refused"
        );
        claims.recover();
        handle(&refused("ev4", "a@example.com", "00u5"), &host).unwrap();
        assert_eq!(claims.owner("a@example.com").as_deref(), Some("okta:00u5"));
        assert_eq!(
            claims.claim("a@example.com", "id:u1"),
            Ok(ClaimResult::Taken)
        );
    }
}
