//! Building a [`SyncMl`] while the document is decoded, one command at a time.
//!
//! [`SyncMl::from_element`] reads a finished tree. A decoder that hands each child of
//! `SyncBody` (and `SyncHdr`) to an [`Assembler`] as soon as it closes converts it at
//! once and frees its subtree, so the tree of a 2,000-command message never exists
//! whole: the memory of one command is reused by the next while it is still in cache.
//! The result, and the first error, are exactly those of [`SyncMl::from_element`] on the
//! whole tree (`decode_is_the_same_streamed_or_from_the_tree` checks both ways on every
//! test vector).

use super::message::missing;
use super::{Command, ModelError, SyncBody, SyncHdr, SyncMl};
use crate::tree::Element;

/// Converts the children of `SyncML` and `SyncBody` as the decoder closes them.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    header: Option<SyncHdr>,
    commands: Vec<Command>,
    is_final: bool,
    body_seen: bool,
    error: Option<ModelError>,
}

impl Assembler {
    /// Offers an element that just closed, `depth` open elements below the root
    /// (`1`: a child of the root), whose root is named `root` and parent `parent`.
    /// Returns the element when the assembler does not take it (the decoder then
    /// attaches it to its parent as usual).
    pub(crate) fn offer(
        &mut self,
        root: &str,
        parent: &str,
        depth: usize,
        el: Element,
    ) -> Option<Element> {
        if !root.eq_ignore_ascii_case("SyncML") {
            return Some(el);
        }
        match depth {
            1 => {
                match el.name.as_ref() {
                    "SyncHdr" if self.header.is_some() => self.fail(ModelError::invalid(
                        "SyncML",
                        "a second SyncHdr",
                        "one SyncHdr",
                    )),
                    "SyncHdr" if self.error.is_none() => match SyncHdr::from_element(el) {
                        Ok(h) => self.header = Some(h),
                        Err(e) => self.fail(e),
                    },
                    // Its children were taken as they closed.
                    "SyncBody" if self.body_seen => self.fail(ModelError::invalid(
                        "SyncML",
                        "a second SyncBody",
                        "one SyncBody",
                    )),
                    "SyncBody" => self.body_seen = true,
                    _ => {}
                }
                None
            }
            // A second SyncBody is an error when it closes: its commands are not read,
            // as the tree reader stops at it.
            2 if parent == "SyncBody" => {
                if self.body_seen || self.error.is_some() {
                    return None;
                }
                if el.name == "Final" {
                    self.is_final = true;
                } else {
                    match Command::parse(el) {
                        Ok(Some(c)) => self.commands.push(c),
                        Ok(None) => {}
                        Err(e) => self.fail(e),
                    }
                }
                None
            }
            _ => Some(el),
        }
    }

    fn fail(&mut self, e: ModelError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// The message, given the root the decoder finished with (what was offered and
    /// taken is no longer in it).
    pub(crate) fn finish(self, root: Element) -> Result<SyncMl, ModelError> {
        if !root.name.eq_ignore_ascii_case("SyncML") {
            return SyncMl::from_element(root);
        }
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.body_seen {
            return Err(missing("SyncML", "SyncBody"));
        }
        Ok(SyncMl {
            header: self.header.unwrap_or_default(),
            body: SyncBody {
                commands: self.commands,
                is_final: self.is_final,
            },
        })
    }
}
