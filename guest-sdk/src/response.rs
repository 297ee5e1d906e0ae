//! The answer a resolver builds.

use crate::bindings::hookbox::okta_import::types::Response as RawResponse;
use crate::{ActionResult, Attribute, Command, Value};

/// A successful answer: the commands for Okta and a debug context.
///
/// Built by chaining; an empty response keeps Okta's default action.
///
/// - Profile updates of the same kind merge into one command (a later value
///   for the same attribute replaces the earlier one).
/// - [`create_user`](Response::create_user) and [`link_to`](Response::link_to)
///   set Okta's action: the last one called wins, and `link_to` always emits
///   Okta's required pair, `action-update(link-user)` then `user-update(id)`.
/// - [`push_raw`](Response::push_raw) appends any command as is, for advanced
///   uses and for testing the host.
///
/// ```
/// use hookbox_sdk::{Command, Response, Value};
///
/// let response = Response::new()
///     .update_user_profile("login", "george.alexander.smith@example.com")
///     .debug("rule", "middle-name");
/// assert_eq!(
///     response.user_profile_value("login"),
///     Some(&Value::from("george.alexander.smith@example.com"))
/// );
/// assert_eq!(response.commands().len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    commands: Vec<Command>,
    debug_context: Vec<(String, String)>,
}

impl Response {
    /// An empty answer: no commands, no debug context.
    pub fn new() -> Self {
        Self::default()
    }

    /// An answer that keeps Okta's default action (the same as [`Response::new`]).
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets an Okta user profile attribute (`com.okta.user.profile.update`), e.g. `login`.
    pub fn update_user_profile(self, attr: impl Into<String>, value: impl Into<Value>) -> Self {
        self.update_profile(ProfileKind::User, attr.into(), value.into())
    }

    /// Sets an app-user profile attribute (`com.okta.appUser.profile.update`);
    /// it then flows through Okta's mappings.
    pub fn update_app_user_profile(self, attr: impl Into<String>, value: impl Into<Value>) -> Self {
        self.update_profile(ProfileKind::AppUser, attr.into(), value.into())
    }

    /// Tells Okta to create a new user (`action-update(create-user)`),
    /// replacing any earlier [`link_to`](Response::link_to).
    pub fn create_user(mut self) -> Self {
        self.clear_action();
        self.commands
            .push(Command::ActionUpdate(ActionResult::CreateUser));
        self
    }

    /// Tells Okta to link the imported user to the existing Okta user
    /// `user_id` (`00u…`): emits `action-update(link-user)` followed by
    /// `user-update(user_id)`, replacing any earlier action.
    pub fn link_to(mut self, user_id: impl Into<String>) -> Self {
        self.clear_action();
        self.commands
            .push(Command::ActionUpdate(ActionResult::LinkUser));
        self.commands.push(Command::UserUpdate(user_id.into()));
        self
    }

    /// Adds (or replaces) a key of the debug context Okta copies into its
    /// System Log. Never put secrets or personal data here.
    pub fn debug(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        let (key, value) = (key.into(), value.into());
        match self.debug_context.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.debug_context.push((key, value)),
        }
        self
    }

    /// Appends `command` exactly as given: no merging, no pairing.
    ///
    /// An escape hatch for advanced uses and for testing the host. Nothing
    /// checks the result here; the host rejects answers Okta would not accept
    /// (for example `action-update(link-user)` without `user-update`, or an
    /// empty attribute name), and the whole call then fails.
    pub fn push_raw(mut self, command: Command) -> Self {
        self.commands.push(command);
        self
    }

    /// The commands, in the order they will be sent.
    pub fn commands(&self) -> &[Command] {
        &self.commands
    }

    /// The debug context, in insertion order.
    pub fn debug_context(&self) -> &[(String, String)] {
        &self.debug_context
    }

    /// The debug value for `key`.
    pub fn debug_value(&self, key: &str) -> Option<&str> {
        self.debug_context
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the answer has no commands (Okta's default action is kept).
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// The value this answer sets for Okta user profile attribute `attr`.
    pub fn user_profile_value(&self, attr: &str) -> Option<&Value> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Command::UserProfileUpdate(profile) => find(profile, attr),
                _ => None,
            })
            .next_back()
    }

    /// The value this answer sets for app-user profile attribute `attr`.
    pub fn app_user_profile_value(&self, attr: &str) -> Option<&Value> {
        self.commands
            .iter()
            .filter_map(|c| match c {
                Command::AppUserProfileUpdate(profile) => find(profile, attr),
                _ => None,
            })
            .next_back()
    }

    /// The answer as the WIT describes it.
    pub fn into_raw(self) -> RawResponse {
        RawResponse {
            commands: self.commands,
            debug_context: self.debug_context,
        }
    }

    fn update_profile(mut self, kind: ProfileKind, name: String, value: Value) -> Self {
        let existing = self.commands.iter_mut().find_map(|c| match (kind, c) {
            (ProfileKind::User, Command::UserProfileUpdate(profile))
            | (ProfileKind::AppUser, Command::AppUserProfileUpdate(profile)) => Some(profile),
            _ => None,
        });
        match existing {
            Some(profile) => match profile.iter_mut().find(|a| a.name == name) {
                Some(attribute) => attribute.value = value,
                None => profile.push(Attribute { name, value }),
            },
            None => {
                let profile = vec![Attribute { name, value }];
                self.commands.push(match kind {
                    ProfileKind::User => Command::UserProfileUpdate(profile),
                    ProfileKind::AppUser => Command::AppUserProfileUpdate(profile),
                });
            }
        }
        self
    }

    fn clear_action(&mut self) {
        self.commands
            .retain(|c| !matches!(c, Command::ActionUpdate(_) | Command::UserUpdate(_)));
    }
}

#[derive(Clone, Copy)]
enum ProfileKind {
    User,
    AppUser,
}

fn find<'a>(profile: &'a [Attribute], name: &str) -> Option<&'a Value> {
    profile.iter().find(|a| a.name == name).map(|a| &a.value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(name: &str, value: impl Into<Value>) -> Attribute {
        Attribute {
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn empty() {
        assert!(Response::new().is_empty());
        assert_eq!(Response::none(), Response::new());
        let raw = Response::none().into_raw();
        assert!(raw.commands.is_empty() && raw.debug_context.is_empty());
    }

    #[test]
    fn link_to_always_emits_the_pair_in_order() {
        let response = Response::new().link_to("00u1");
        assert_eq!(
            response.commands(),
            [
                Command::ActionUpdate(ActionResult::LinkUser),
                Command::UserUpdate("00u1".into())
            ]
        );
    }

    #[test]
    fn last_action_wins_and_never_leaves_half_a_pair() {
        let response = Response::new()
            .update_user_profile("login", "a@b.c")
            .link_to("00u1")
            .create_user();
        assert_eq!(
            response.commands(),
            [
                Command::UserProfileUpdate(vec![attr("login", "a@b.c")]),
                Command::ActionUpdate(ActionResult::CreateUser)
            ]
        );
        let response = response.link_to("00u2").link_to("00u3");
        assert_eq!(
            response.commands()[1..],
            [
                Command::ActionUpdate(ActionResult::LinkUser),
                Command::UserUpdate("00u3".into())
            ]
        );
    }

    #[test]
    fn profile_updates_merge_per_kind() {
        let response = Response::new()
            .update_user_profile("login", "a@b.c")
            .update_app_user_profile("x", 1_i64)
            .update_user_profile("email", "e@b.c")
            .update_user_profile("login", "z@b.c")
            .update_app_user_profile("y", true);
        assert_eq!(
            response.commands(),
            [
                Command::UserProfileUpdate(vec![attr("login", "z@b.c"), attr("email", "e@b.c")]),
                Command::AppUserProfileUpdate(vec![attr("x", 1_i64), attr("y", true)]),
            ]
        );
        assert_eq!(
            response.user_profile_value("login"),
            Some(&Value::from("z@b.c"))
        );
        assert_eq!(
            response.app_user_profile_value("y"),
            Some(&Value::from(true))
        );
        assert_eq!(response.user_profile_value("x"), None);
    }

    #[test]
    fn debug_context_replaces_keys_in_order() {
        let response = Response::new()
            .debug("a", "1")
            .debug("b", "2")
            .debug("a", "3");
        assert_eq!(
            response.debug_context(),
            [
                ("a".to_owned(), "3".to_owned()),
                ("b".to_owned(), "2".to_owned())
            ]
        );
        assert_eq!(response.debug_value("b"), Some("2"));
        assert_eq!(response.debug_value("c"), None);
    }

    #[test]
    fn push_raw_is_verbatim() {
        let response = Response::new()
            .push_raw(Command::ActionUpdate(ActionResult::LinkUser))
            .push_raw(Command::UserProfileUpdate(vec![attr("", "x")]));
        assert_eq!(response.commands().len(), 2);
        let raw = response.into_raw();
        assert_eq!(
            raw.commands[0],
            Command::ActionUpdate(ActionResult::LinkUser)
        );
    }
}
