//! hookbox's durable state (work in progress).
