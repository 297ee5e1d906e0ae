//! The imported user Okta asks about, with accessors.

use crate::{ActionResult, Application, Attribute, Context, ImportRequest, Job, Value};

/// One call of the hook: one imported user.
///
/// A thin wrapper over the WIT [`ImportRequest`] with accessors for what
/// resolvers usually need. Build one for tests with [`Request::builder`], or
/// from a full [`ImportRequest`] with `Request::from`.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    raw: ImportRequest,
}

impl Request {
    /// A builder for test requests (see [`RequestBuilder`] for the defaults).
    pub fn builder() -> RequestBuilder {
        RequestBuilder::default()
    }

    /// Unique per call; Okta retries a failed call once with the same id.
    pub fn event_id(&self) -> &str {
        &self.raw.event_id
    }

    /// RFC 3339 time Okta sent the call, as Okta wrote it.
    pub fn event_time(&self) -> &str {
        &self.raw.event_time
    }

    /// The id of the inline hook registration (`cal…`).
    pub fn source(&self) -> &str {
        &self.raw.source
    }

    /// What Okta will do if the answer changes nothing.
    pub fn action(&self) -> ActionResult {
        self.raw.action
    }

    /// The app user's attributes (`data.appUser.profile`): for CSV imports, the columns.
    pub fn app_user(&self) -> Profile<'_> {
        Profile(&self.raw.app_user_profile)
    }

    /// The Okta profile Okta is about to create or update (`data.user.profile`).
    pub fn user(&self) -> Profile<'_> {
        Profile(&self.raw.user_profile)
    }

    /// The Okta user profile's `login`, when it is text.
    pub fn login(&self) -> Option<&str> {
        self.user().get_str("login")
    }

    /// The existing Okta user Okta already matched (`data.user.id`), if any.
    pub fn user_id(&self) -> Option<&str> {
        self.raw.user_id.as_deref()
    }

    /// Profile attributes in conflict with an existing Okta user; in practice only `login`.
    pub fn conflicts(&self) -> &[String] {
        &self.raw.context.conflicts
    }

    /// Whether Okta reports a conflict on the attribute `name` (e.g. `"login"`).
    pub fn has_conflict(&self, name: &str) -> bool {
        self.conflicts().iter().any(|c| c == name)
    }

    /// The app the import runs for, when Okta sent it.
    pub fn application(&self) -> Option<&Application> {
        self.raw.context.application.as_ref()
    }

    /// The import job, when Okta sent it.
    pub fn job(&self) -> Option<&Job> {
        self.raw.context.job.as_ref()
    }

    /// The Okta users currently matched (most likely user ids).
    pub fn matches(&self) -> &[Value] {
        &self.raw.context.matches
    }

    /// The matching rules in force, e.g. `EMAIL`, `FIRST_AND_LAST_NAME`.
    pub fn policy(&self) -> &[String] {
        &self.raw.context.policy
    }

    /// The request as the WIT describes it.
    pub fn as_raw(&self) -> &ImportRequest {
        &self.raw
    }

    /// The request as the WIT describes it, by value.
    pub fn into_raw(self) -> ImportRequest {
        self.raw
    }
}

impl From<ImportRequest> for Request {
    fn from(raw: ImportRequest) -> Self {
        Request { raw }
    }
}

/// A read-only view of a profile: its attributes in the order Okta sent them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile<'a>(&'a [Attribute]);

impl<'a> Profile<'a> {
    /// The value of attribute `name`, if the profile has it (even as `null`).
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    /// The text of attribute `name`; `None` when it is absent or not a JSON string.
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Whether the profile has attribute `name` (even as `null`).
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// `(name, value)` of every attribute, in the order Okta sent them.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Value)> + use<'a> {
        self.0.iter().map(|a| (a.name.as_str(), &a.value))
    }

    /// The attributes, in the order Okta sent them.
    pub fn attributes(&self) -> &'a [Attribute] {
        self.0
    }

    /// The number of attributes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the profile has no attributes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Builds a [`Request`] for tests.
///
/// Defaults: event id `test-event`, event time `1970-01-01T00:00:00.000Z`,
/// source `test-hook`, action [`ActionResult::CreateUser`], empty profiles,
/// no user id, no conflicts, no application or job, no matches, no policy.
///
/// ```
/// use hookbox_sdk::Request;
///
/// let request = Request::builder()
///     .app_user_attr("firstName", "George")
///     .user_attr("login", "george.smith@example.com")
///     .conflict("login")
///     .build();
/// assert_eq!(request.login(), Some("george.smith@example.com"));
/// assert!(request.has_conflict("login"));
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    raw: ImportRequest,
}

impl Default for RequestBuilder {
    fn default() -> Self {
        RequestBuilder {
            raw: ImportRequest {
                event_id: "test-event".into(),
                event_time: "1970-01-01T00:00:00.000Z".into(),
                source: "test-hook".into(),
                action: ActionResult::CreateUser,
                app_user_profile: Vec::new(),
                user_profile: Vec::new(),
                user_id: None,
                context: Context {
                    conflicts: Vec::new(),
                    application: None,
                    job: None,
                    matches: Vec::new(),
                    policy: Vec::new(),
                },
            },
        }
    }
}

impl RequestBuilder {
    /// Sets the event id.
    pub fn event_id(mut self, id: impl Into<String>) -> Self {
        self.raw.event_id = id.into();
        self
    }

    /// Sets the event time.
    pub fn event_time(mut self, time: impl Into<String>) -> Self {
        self.raw.event_time = time.into();
        self
    }

    /// Sets the inline hook registration id.
    pub fn source(mut self, source: impl Into<String>) -> Self {
        self.raw.source = source.into();
        self
    }

    /// Sets Okta's default action.
    pub fn action(mut self, action: ActionResult) -> Self {
        self.raw.action = action;
        self
    }

    /// Adds (or replaces) an app-user profile attribute.
    pub fn app_user_attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        set_attr(&mut self.raw.app_user_profile, name.into(), value.into());
        self
    }

    /// Adds (or replaces) an Okta user profile attribute.
    pub fn user_attr(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        set_attr(&mut self.raw.user_profile, name.into(), value.into());
        self
    }

    /// Sets the id of the existing Okta user Okta matched.
    pub fn user_id(mut self, id: impl Into<String>) -> Self {
        self.raw.user_id = Some(id.into());
        self
    }

    /// Adds an attribute in conflict (usually `"login"`).
    pub fn conflict(mut self, name: impl Into<String>) -> Self {
        self.raw.context.conflicts.push(name.into());
        self
    }

    /// Sets the application.
    pub fn application(mut self, application: Application) -> Self {
        self.raw.context.application = Some(application);
        self
    }

    /// Sets the import job.
    pub fn job(mut self, job: Job) -> Self {
        self.raw.context.job = Some(job);
        self
    }

    /// Adds a matched Okta user.
    pub fn matched(mut self, user: impl Into<Value>) -> Self {
        self.raw.context.matches.push(user.into());
        self
    }

    /// Adds a matching rule.
    pub fn policy(mut self, rule: impl Into<String>) -> Self {
        self.raw.context.policy.push(rule.into());
        self
    }

    /// The request.
    pub fn build(self) -> Request {
        Request { raw: self.raw }
    }
}

fn set_attr(profile: &mut Vec<Attribute>, name: String, value: Value) {
    match profile.iter_mut().find(|a| a.name == name) {
        Some(attribute) => attribute.value = value,
        None => profile.push(Attribute { name, value }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Request {
        Request::builder()
            .event_id("evt")
            .app_user_attr("firstName", "George")
            .app_user_attr("middleName", Value::Null)
            .app_user_attr("age", 42_i64)
            .user_attr("login", "george.smith@example.com")
            .user_id("00u1")
            .conflict("login")
            .application(Application {
                name: "test_app".into(),
                id: "0oa1".into(),
                label: "Test".into(),
                status: "ACTIVE".into(),
            })
            .job(Job {
                id: "ij1".into(),
                type_: "import:users".into(),
            })
            .matched("00u2")
            .policy("EMAIL")
            .build()
    }

    #[test]
    fn getters() {
        let request = sample();
        assert_eq!(request.event_id(), "evt");
        assert_eq!(request.action(), ActionResult::CreateUser);
        assert_eq!(request.app_user().get_str("firstName"), Some("George"));
        assert_eq!(request.app_user().get("middleName"), Some(&Value::Null));
        assert_eq!(request.app_user().get_str("middleName"), None);
        assert_eq!(request.app_user().get_str("age"), None);
        assert_eq!(request.app_user().get("age"), Some(&Value::Integer(42)));
        assert_eq!(request.app_user().get("missing"), None);
        assert!(request.app_user().contains("middleName"));
        assert_eq!(request.app_user().len(), 3);
        assert_eq!(
            request
                .app_user()
                .iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            ["firstName", "middleName", "age"]
        );
        assert_eq!(request.login(), Some("george.smith@example.com"));
        assert_eq!(request.user_id(), Some("00u1"));
        assert!(request.has_conflict("login"));
        assert!(!request.has_conflict("email"));
        assert_eq!(request.conflicts(), ["login"]);
        assert_eq!(
            request.application().map(|a| a.name.as_str()),
            Some("test_app")
        );
        assert_eq!(
            request.job().map(|j| j.type_.as_str()),
            Some("import:users")
        );
        assert_eq!(request.matches(), [Value::from("00u2")]);
        assert_eq!(request.policy(), ["EMAIL"]);
    }

    #[test]
    fn builder_replaces_attributes_and_round_trips() {
        let request = Request::builder()
            .app_user_attr("a", "1")
            .app_user_attr("a", "2")
            .build();
        assert_eq!(request.app_user().len(), 1);
        assert_eq!(request.app_user().get_str("a"), Some("2"));
        let raw = request.clone().into_raw();
        assert_eq!(Request::from(raw), request);
    }

    #[test]
    fn defaults() {
        let request = Request::builder().build();
        assert_eq!(request.event_id(), "test-event");
        assert!(request.app_user().is_empty());
        assert!(request.conflicts().is_empty());
        assert_eq!(request.login(), None);
        assert_eq!(request.user_id(), None);
    }
}
