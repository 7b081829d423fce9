//! The SCIM filter language and attribute paths: one parser for query
//! filters and PATCH paths, one AST, and an in-memory evaluator.

mod ast;
mod eval;
mod parser;

pub use ast::{AttrPath, CompValue, CompareOp, Filter, PatchPath};
pub use eval::{Scope, matches, validate};
pub use parser::{MAX_DEPTH, MAX_LEN, MAX_TERMS, ParseError, parse_filter, parse_path};
