//! Okta's wire format for the import hook: its request JSON into the WIT
//! request ([`decode`]), and how an invocation ended into Okta's answer
//! ([`encode`]). Wire types live here, apart from the domain (WIT) types the
//! plugin sees; the request path that uses them is [`crate::pipeline`].

pub mod decode;
pub mod encode;
