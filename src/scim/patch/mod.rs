//! The PATCH engine (RFC 7644 §3.5.2): the request parsed into operations
//! ([`parse`]), and the operations applied to a stored document
//! ([`engine`]). Pure. What an operation on the values of a multi-valued
//! attribute means, and how a group's row-stored `members` are changed, is
//! decided in [`crate::scim::membership`].

mod engine;
mod parse;

pub use engine::apply;
pub use parse::{MAX_OPERATIONS, OpKind, Operation, PATCH_OP_URN, parse_request, weight};
