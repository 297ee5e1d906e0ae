//! OAuth 2.0 bearer verification (work in progress).
