//! The registry of live sessions.
