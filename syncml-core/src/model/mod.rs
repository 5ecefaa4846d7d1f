//! The typed SyncML message model (SyncML 1.1 and 1.2; 1.0 accepted on input).
//!
//! Every type here is built from an [`crate::tree::Element`] tree with
//! `from_element` (liberal: whitespace trimmed where the value is an identifier,
//! unknown elements skipped, optional parts may be missing) and written to a
//! [`crate::tree::Sink`] with `write` (strict: DTD element order, only known
//! elements).

mod assemble;
mod devinf;
mod message;
mod meta;

pub use devinf::*;
pub use message::*;
pub use meta::*;

pub(crate) use assemble::Assembler;

use crate::tree::{Element, Namespace, Node, Sink};

/// Why an element tree is not a valid SyncML message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// A required child element is absent.
    #[error("<{parent}> is missing its required <{child}>")]
    Missing {
        /// The element that should contain it.
        parent: &'static str,
        /// The missing child.
        child: &'static str,
    },
    /// An element holds a value of the wrong form.
    #[error("<{element}> holds {value:?}, expected {expected}")]
    Invalid {
        /// The element.
        element: &'static str,
        /// What it held (truncated to 64 characters).
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The document's root is not the expected element.
    #[error("expected root <{expected}>, found <{found}>")]
    UnexpectedRoot {
        /// What was expected.
        expected: &'static str,
        /// What was found.
        found: String,
    },
}

impl ModelError {
    pub(crate) fn invalid(element: &'static str, value: &str, expected: &'static str) -> Self {
        let value: String = value.chars().take(64).collect();
        ModelError::Invalid {
            element,
            value,
            expected,
        }
    }
}

/// Character data of `el`, trimmed (for identifiers, numbers, URIs: REP-42).
pub(crate) fn trimmed(mut el: Element, name: &'static str) -> Result<String, ModelError> {
    // The common case, one text already trimmed, moves the decoder's string out.
    if let [Node::Text(t)] = el.children.as_mut_slice() {
        if t.len() == t.trim().len() {
            return Ok(std::mem::take(t));
        }
    }
    match el.text() {
        Some(t) => Ok(t.trim().to_string()),
        None => Err(ModelError::invalid(name, "<binary>", "UTF-8 text")),
    }
}

/// Character data of `el` parsed as a number.
pub(crate) fn number<T: std::str::FromStr>(
    el: &Element,
    name: &'static str,
) -> Result<T, ModelError> {
    let t = el
        .text()
        .ok_or_else(|| ModelError::invalid(name, "<binary>", "UTF-8 text"))?;
    let t = t.trim();
    t.parse::<T>()
        .map_err(|_| ModelError::invalid(name, t, "a decimal number"))
}

/// Takes the element children out of `el`, dropping character data.
pub(crate) fn into_elements(el: Element) -> impl Iterator<Item = Element> {
    el.children.into_iter().filter_map(|n| match n {
        Node::Element(e) => Some(e),
        _ => None,
    })
}

/// Writes `<name>value</name>`; an empty value becomes `<name/>`.
pub(crate) fn leaf<S: Sink + ?Sized>(s: &mut S, ns: &Namespace, name: &str, value: &str) {
    s.start(ns, name);
    if !value.is_empty() {
        s.text(value);
    }
    s.end();
}

/// Writes `<name>value</name>` when `value` is present.
pub(crate) fn opt_leaf<S: Sink + ?Sized>(
    s: &mut S,
    ns: &Namespace,
    name: &str,
    value: Option<&str>,
) {
    if let Some(v) = value {
        leaf(s, ns, name, v);
    }
}

/// Writes the empty flag element `<name/>` when `on`.
pub(crate) fn flag<S: Sink + ?Sized>(s: &mut S, ns: &Namespace, name: &str, on: bool) {
    if on {
        s.start(ns, name);
        s.end();
    }
}
