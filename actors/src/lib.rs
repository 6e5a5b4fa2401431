//! switchboard actors (work in progress).
