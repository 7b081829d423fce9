//! The SCIM protocol as pure code: schemas, validation, rendering, messages.
//! No I/O and no async here; nothing in this module knows HTTP or SQL.

pub mod compat;
pub mod discovery;
pub mod error;
pub mod filter;
pub mod json;
pub mod list;
pub mod membership;
pub mod patch;
pub mod path;
pub mod projection;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
