//! The SCIM protocol as pure code: schemas, validation, rendering, messages.
//! No I/O and no async here; nothing in this module knows HTTP or SQL.

pub mod error;
pub mod list;
pub mod resource;
pub mod schema;

pub use error::{ScimError, ScimType};
