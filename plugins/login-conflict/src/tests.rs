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
            ("rule".to_owned(), "middle-name".to_owned())
        ]
    );
    let logs = host.logs();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].level, Level::Debug);
    assert_eq!(logs[0].message, "middle name infixed");
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
    assert_eq!(logs[0].message, "no middle name: hashed suffix");
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
    assert_eq!(
        login_for(&request),
        format!(
            "george.alexander.smith.{}@example.com",
            identity_suffix("g1", 1)
        )
    );
    assert_eq!(rule_of(&request), "middle-name+rehashed");

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
