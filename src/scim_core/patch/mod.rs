//! The SCIM PATCH engine (RFC 7644 §3.5.2): parses a `PatchOp` request body
//! ([`parse_patch_request`]) and applies its `add` (§3.5.2.1), `remove` (§3.5.2.2) and
//! `replace` (§3.5.2.3) operations to a normalised resource document as produced by
//! `resource::normalize` (canonical attribute names, no `id`/`meta`/`schemas`, extension
//! attributes under their schema URN, multi-valued attributes as arrays). Paths are parsed by
//! `filter::parse_patch_path` (`attrPath / valuePath [subAttr]`, §3.5.2) and resolved
//! case-insensitively against the resource type's schemas (RFC 7643 §2.1); value filters are
//! evaluated with `filter::matches`, honouring each sub-attribute's `caseExact` (RFC 7643
//! §2.2). Mutability is enforced from the schema (RFC 7643 §2.2: readOnly and immutable).
//! Operations run in order on a copy of the document, so a failing operation leaves the
//! original untouched (§3.5.2: a PATCH request "SHALL be treated as atomic"); values are
//! inserted as the client sent them under canonical names, and the caller re-normalises the
//! result to validate types and required attributes. Where the RFC leaves a choice open, and
//! for the shapes Entra ID and Okta actually send, the rules are:
//!
//! * `remove` of a value filter matching nothing, or of an attribute that has no value, is
//!   a successful no-op (idempotent retries); `replace` with a filter matching nothing is
//!   `noTarget`, as §3.5.2.3 requires.
//! * `add` with `multi[filter]` or `multi[filter].sub` matching nothing creates a new element
//!   from the filter when it is an `eq` comparison or an `and` of them (Entra ID's
//!   `emails[type eq "work"].value`); any other filter is `noTarget`.
//! * `add` to a multi-valued complex attribute treats an element whose `value` equals an
//!   existing element's `value` (per `caseExact`) as that element and merges the given
//!   sub-attributes into it ("If the target location already contains the value specified,
//!   no changes SHOULD be made"), keeping its immutable sub-attributes that have a value;
//!   elements without `value` are skipped when exactly equal.
//! * `replace` of `multi[filter]` replaces each matching element whole (§3.5.2.3); `add` of
//!   `multi[filter]` merges the given sub-attributes into each matching element.
//! * `add`/`replace` of `multi.sub` without a filter sets the sub-attribute of every element
//!   (creating one element when there is none); `remove` of it removes it from every element.
//! * A `value` on `remove` of a multi-valued attribute (Azure's
//!   `{"op":"Remove","path":"members","value":[{"value":"id"}]}`) removes only the elements it
//!   names: by `value` when given, otherwise by all the given sub-attributes.
//! * A JSON `null` value means unassigned (RFC 7643 §2.5): `replace` with null removes the
//!   target, `add` with null (or an empty array, as Okta sends) changes nothing.
//! * A single-valued complex attribute given a string (Entra ID's manager id) takes it as its
//!   `value` sub-attribute; given an array of one object, it takes that object.
//! * In a path-less value, `schemas` is ignored, unknown attributes are ignored (as
//!   `normalize` does for POST and PUT), keys may be attribute paths (`name.givenName`,
//!   URN-qualified `urn:…:User:department`), and readOnly attributes such as `id`/`meta` are
//!   `mutability` errors (except, with [`apply_patch_with_id`], an `id` equal to the
//!   resource's own).
//! * Removing a required attribute is `invalidValue`; changing a readOnly attribute, or an
//!   immutable one that already has a value, is `mutability`.
//! * After an operation sets `primary` true on an element of a multi-valued attribute, the
//!   `primary` sub-attribute is removed from every element the operation did not touch
//!   (RFC 7643 §2.4: at most one primary value).
//! * More than `max_operations` operations is HTTP 413, as for bulk (RFC 7644 §3.7.4).

mod apply;
mod multi_valued;
mod mutability;
mod operations;
mod request;
mod target;
mod value_filter;
mod values;

pub use apply::{apply_patch, apply_patch_with_id};
pub use request::{parse_patch_request, PatchOp, PatchOpKind};

/// The PATCH request message schema (RFC 7644 §3.5.2).
pub const PATCH_OP_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// How much of a path or operation name an error message quotes.
const MAX_QUOTED_CHARS: usize = 200;

#[cfg(test)]
mod tests;
