//! Stand-ins for the services rollbot talks to, on loopback, for the test suite and
//! `rollbot playground`: each records every call and answers as the real service documents.
pub mod requests;
pub mod slack;
