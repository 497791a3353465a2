//! tickbot's grammar, with no I/O: what counts as a checkbox task in a pull request
//! description ([`checklist`], checked against GitHub's own renderer), the comment commands
//! ([`commands`]), and the ids that name repositories, pull requests and commits ([`ids`]).
//! Everything here is a pure function of its input, so it is fast to test and to fuzz.

pub mod checklist;
pub mod commands;
pub mod ids;
