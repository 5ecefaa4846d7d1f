//! Message-size tools: how many bytes a message takes in an encoding, how to spread a
//! package's commands over several messages under the peer's `MaxMsgSize` (LOB items),
//! and how to cut a large object into `MoreData` chunks and put it back together.
//!
//! ```
//! use syncml_core::model::{Data, Item};
//! use syncml_core::size::{chunk_item, ChunkOutcome, Reassembler};
//!
//! let item = Item { data: Some(Data::Binary(vec![7u8; 10_000])), ..Item::default() };
//! let chunks = chunk_item(item.clone(), 4_000).unwrap();
//! assert_eq!(chunks.len(), 3);
//! assert!(chunks[0].more_data && chunks[1].more_data && !chunks[2].more_data);
//!
//! let mut r = Reassembler::new(Some(1_000_000));
//! let mut done = None;
//! for c in chunks {
//!     if let ChunkOutcome::Complete(i) = r.push(c).unwrap() { done = Some(i); }
//! }
//! assert_eq!(done.unwrap().data, item.data);
//! ```

use crate::codec::{encode_wbxml, encode_xml, EncodeError, Encoding};
use crate::codes::StatusCode;
use crate::model::{Command, Data, Item, Meta, Sync, SyncBody, SyncMl};
use crate::tree::{Namespace, Sink};
use crate::{wbxml, xml};

/// Why a package cannot be laid out or a chunk accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SizeError {
    /// The message could not be encoded at all.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Even an empty message (header, the leading commands, `Final`) exceeds the limit.
    #[error("the message header alone takes {needed} bytes, more than MaxMsgSize {max}")]
    HeaderTooLarge {
        /// Bytes the empty message takes.
        needed: usize,
        /// The limit.
        max: usize,
    },
    /// One command (with its items) is larger than a whole message may be: chunk its
    /// items with [`chunk_item`] first.
    #[error("command {cmd_id} needs {needed} bytes, more than fits in one message ({room})")]
    CommandTooLarge {
        /// The command's CmdID.
        cmd_id: String,
        /// Its encoded size.
        needed: usize,
        /// The room an otherwise empty message has.
        room: usize,
    },
    /// The item has no data to chunk, or its data is not text or bytes.
    #[error("only Text or Binary item data can be chunked")]
    NotChunkable,
    /// A chunk size of zero.
    #[error("chunk size must be at least 1 byte")]
    ZeroChunk,
}

/// Why a chunk of a large object was refused; each maps to the status the receiver
/// answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// The first chunk of a large object carries no `Meta/Size` (411 Size required).
    #[error("the first chunk of a large object carries no Meta/Size")]
    SizeRequired,
    /// The declared size exceeds our MaxObjSize (416 Requested size too big).
    #[error("object of {declared} bytes exceeds MaxObjSize {max}")]
    TooLarge {
        /// The declared size.
        declared: u64,
        /// Our limit.
        max: u64,
    },
    /// The reassembled object's size differs from the declared one (424 Size mismatch).
    #[error("object declared {declared} bytes, received {received}")]
    SizeMismatch {
        /// The declared size.
        declared: u64,
        /// What arrived.
        received: u64,
    },
    /// A chunk of another item arrived while one was incomplete (Alert 223 case; the
    /// pending object is dropped).
    #[error("a chunk of another item arrived before the end of the pending one")]
    NoEndOfData,
    /// A chunk whose data is not text or bytes.
    #[error("chunk data is neither text nor bytes")]
    BadData,
}

impl ChunkError {
    /// The SyncML status a receiver answers this chunk with.
    pub fn status(&self) -> StatusCode {
        match self {
            ChunkError::SizeRequired => StatusCode(411),
            ChunkError::TooLarge { .. } => StatusCode(416),
            ChunkError::SizeMismatch { .. } => StatusCode(424),
            ChunkError::NoEndOfData => StatusCode(223),
            ChunkError::BadData => StatusCode(400),
        }
    }
}

/// The encoded size of a message in bytes.
pub fn encoded_len(msg: &SyncMl, encoding: Encoding) -> Result<usize, EncodeError> {
    Ok(match encoding {
        Encoding::Xml => encode_xml(msg, &xml::EncodeOptions::default())?.len(),
        Encoding::Wbxml => encode_wbxml(msg, wbxml::EncodeOptions::default())?.len(),
    })
}

/// Spread `commands` over as many messages as needed so that each message, made of
/// `template` (its header and any leading commands such as Statuses, which go in the
/// first message only) plus its share of `commands` plus `Final`, encodes within
/// `max_msg_size` bytes.
///
/// A `Sync` that does not fit whole is split into several `Sync`s with the same
/// target, source and CmdID (CmdIDs are per message). Returns the command list of each
/// message, in order. Sizes are measured by encoding, with a 2-byte allowance per
/// command for a WBXML code-page switch.
pub fn split_commands(
    template: &SyncMl,
    commands: Vec<Command>,
    max_msg_size: usize,
    encoding: Encoding,
) -> Result<Vec<Vec<Command>>, SizeError> {
    split_up_to(template, commands, max_msg_size, encoding, None).map(|(m, _)| m)
}

/// The bytes of item data a command carries (nested commands included): a lower bound
/// of its encoded size in either encoding.
fn payload_len(cmd: &Command) -> usize {
    let items: usize = cmd
        .items()
        .iter()
        .map(|i| match &i.data {
            Some(Data::Text(t)) => t.len(),
            Some(Data::Binary(b)) => b.len(),
            _ => 0,
        })
        .sum();
    let nested: usize = match cmd {
        Command::Sync(s) => s.commands.iter().map(payload_len).sum(),
        Command::Atomic(a) | Command::Sequence(a) => a.commands.iter().map(payload_len).sum(),
        _ => 0,
    };
    items + nested
}

/// The first message of [`split_commands`], and the commands left for later messages,
/// untouched and unmeasured (a `Sync` cut in two leaves its tail at the front). Costs
/// what the first message holds, not what the whole list holds: a sender of a long
/// package calls it once per message.
pub fn split_first(
    template: &SyncMl,
    commands: Vec<Command>,
    max_msg_size: usize,
    encoding: Encoding,
) -> Result<(Vec<Command>, Vec<Command>), SizeError> {
    let (mut messages, rest) = split_up_to(template, commands, max_msg_size, encoding, Some(1))?;
    let first = if messages.is_empty() {
        Vec::new()
    } else {
        messages.swap_remove(0)
    };
    Ok((first, rest))
}

fn split_up_to(
    template: &SyncMl,
    commands: Vec<Command>,
    max_msg_size: usize,
    encoding: Encoding,
    max_messages: Option<usize>,
) -> Result<(Vec<Vec<Command>>, Vec<Command>), SizeError> {
    let mut base = SyncMl {
        header: template.header.clone(),
        body: SyncBody {
            commands: Vec::new(),
            is_final: true,
        },
    };
    let overhead = encoded_len(&base, encoding)?;
    base.body.commands = template.body.commands.clone();
    let first_overhead = encoded_len(&base, encoding)?;
    if first_overhead > max_msg_size {
        return Err(SizeError::HeaderTooLarge {
            needed: first_overhead,
            max: max_msg_size,
        });
    }
    let mut meter = CommandMeter::new(template, encoding);
    let room_full = max_msg_size - overhead;
    let mut messages: Vec<Vec<Command>> = Vec::new();
    let mut current: Vec<Command> = Vec::new();
    let mut room = max_msg_size - first_overhead;
    let mut queue: std::collections::VecDeque<Command> = commands.into();
    loop {
        if max_messages.is_some_and(|cap| messages.len() >= cap) {
            // What `current` holds already belongs to a later message.
            let mut rest = std::mem::take(&mut current);
            rest.extend(queue);
            return Ok((messages, rest));
        }
        let Some(cmd) = queue.pop_front() else {
            break;
        };
        if let Command::Sync(mut sync) = cmd {
            // As many of the Sync's commands as fit here, found by writing them one
            // after the other (a long Sync is not encoded whole first).
            let fit = meter.fit_sync(&sync, room)?;
            if fit.commands == sync.commands.len() && fit.size <= room {
                room -= fit.size;
                current.push(Command::Sync(sync));
                continue;
            }
            if fit.commands > 0 {
                // Fill this message with them; the rest of the Sync opens the next.
                let rest = Sync {
                    cmd_id: sync.cmd_id.clone(),
                    no_resp: sync.no_resp,
                    cred: sync.cred.clone(),
                    target: sync.target.clone(),
                    source: sync.source.clone(),
                    meta: sync.meta.clone(),
                    number_of_changes: sync.number_of_changes,
                    commands: sync.commands.split_off(fit.commands),
                };
                current.push(Command::Sync(sync));
                messages.push(std::mem::take(&mut current));
                room = room_full;
                queue.push_front(Command::Sync(rest));
                continue;
            }
            if current.is_empty() && room == room_full {
                // Not even the Sync shell plus one command fits in an empty message.
                let cmd_id = sync
                    .commands
                    .first()
                    .map(|c| c.cmd_id().to_string())
                    .unwrap_or_else(|| sync.cmd_id.clone());
                return Err(SizeError::CommandTooLarge {
                    cmd_id,
                    needed: meter.measure(&Command::Sync(sync))?,
                    room: room_full,
                });
            }
            queue.push_front(Command::Sync(sync));
            messages.push(std::mem::take(&mut current));
            room = room_full;
            continue;
        }
        // A command whose payload alone exceeds the room cannot fit: skip encoding it
        // whole.
        let need = if payload_len(&cmd) > room {
            usize::MAX
        } else {
            meter.measure(&cmd)?
        };
        if need <= room {
            room -= need;
            current.push(cmd);
            continue;
        }
        let need = if need == usize::MAX {
            meter.measure(&cmd)?
        } else {
            need
        };
        if need > room_full {
            return Err(SizeError::CommandTooLarge {
                cmd_id: cmd.cmd_id().to_string(),
                needed: need,
                room: room_full,
            });
        }
        messages.push(std::mem::take(&mut current));
        room = room_full - need;
        current.push(cmd);
    }
    if !current.is_empty() || messages.is_empty() {
        messages.push(current);
    }
    Ok((messages, Vec::new()))
}

/// Measures single commands as they would be encoded in a message's body, without
/// encoding the message around them again for each one or copying them: one encoder holds
/// the message's header and an open `SyncBody`, each command is written into it and taken
/// out again, and its size is what the encoder grew by, plus two bytes for a WBXML
/// code-page switch (the code page a command starts on depends on the one before it).
///
/// ```
/// use syncml_core::model::{Command, ItemCommand, SyncBody, SyncHdr, SyncMl};
/// use syncml_core::size::CommandMeter;
/// use syncml_core::tree::SyncMlVersion;
/// use syncml_core::Encoding;
///
/// let template = SyncMl {
///     header: SyncHdr::new(SyncMlVersion::V1_2, "1", "1", "server", "client"),
///     body: SyncBody::default(),
/// };
/// let mut meter = CommandMeter::new(&template, Encoding::Wbxml);
/// let add = Command::Add(ItemCommand { cmd_id: "1".into(), ..ItemCommand::default() });
/// let n = meter.measure(&add).unwrap();
/// assert!(n > 2 && n < 20);
/// assert_eq!(meter.measure(&add).unwrap(), n, "each command is measured on its own");
/// ```
#[derive(Debug)]
pub struct CommandMeter {
    enc: MeterEncoder,
}

#[derive(Debug)]
enum MeterEncoder {
    Xml(xml::Encoder),
    Wbxml(wbxml::Encoder),
}

impl CommandMeter {
    /// A meter for commands of messages with `template`'s header (its commands are not
    /// written), in `encoding`.
    pub fn new(template: &SyncMl, encoding: Encoding) -> CommandMeter {
        fn open<S: Sink>(s: &mut S, template: &SyncMl) {
            s.start(&Namespace::SyncMl, "SyncML");
            template.header.write(s);
            s.start(&Namespace::SyncMl, "SyncBody");
        }
        let enc = match encoding {
            Encoding::Xml => {
                let opts = xml::EncodeOptions {
                    version: template.version(),
                    ..xml::EncodeOptions::default()
                };
                let mut enc = xml::Encoder::new(opts);
                open(&mut enc, template);
                enc.open_content();
                MeterEncoder::Xml(enc)
            }
            Encoding::Wbxml => {
                let mut enc =
                    wbxml::Encoder::for_syncml(template.version(), wbxml::EncodeOptions::default());
                open(&mut enc, template);
                enc.open_content();
                MeterEncoder::Wbxml(enc)
            }
        };
        CommandMeter { enc }
    }

    /// How many of `sync`'s commands (from the first) fit, inside the `Sync`, in `room`
    /// bytes of a message body, and what that takes, the code-page allowance included.
    /// The commands are written one after the other, as in the message (not each
    /// measured alone), and writing stops at the first that does not fit: a long
    /// `Sync` costs what fits of it.
    pub fn fit_sync(&mut self, sync: &Sync, room: usize) -> Result<SyncFit, EncodeError> {
        match &mut self.enc {
            MeterEncoder::Xml(e) => {
                let mark = e.mark();
                let fit = fit_sync_in(e, sync, room, |e| e.written());
                e.rewind(mark);
                fit
            }
            MeterEncoder::Wbxml(e) => {
                let mark = e.mark();
                let fit = fit_sync_in(e, sync, room, |e| e.written());
                e.rewind(mark);
                fit
            }
        }
    }

    /// The bytes `cmd` adds to a message body, the code-page allowance included.
    pub fn measure(&mut self, cmd: &Command) -> Result<usize, EncodeError> {
        let grown = match &mut self.enc {
            MeterEncoder::Xml(e) => {
                let mark = e.mark();
                cmd.write(e);
                if let Some(err) = e.error() {
                    return Err(EncodeError::from(err.clone()));
                }
                let n = e.written() - mark.0;
                e.rewind(mark);
                n
            }
            MeterEncoder::Wbxml(e) => {
                let mark = e.mark();
                let before = e.written();
                cmd.write(e);
                if let Some(err) = e.error() {
                    return Err(EncodeError::from(err.clone()));
                }
                let n = e.written() - before;
                e.rewind(mark);
                n
            }
        };
        Ok(grown + 2)
    }
}

/// What [`CommandMeter::fit_sync`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFit {
    /// How many of the `Sync`'s commands fit (all of them, or the first few).
    pub commands: usize,
    /// The bytes the `Sync` holding those commands takes (for none: the shell alone,
    /// which may not fit either).
    pub size: usize,
}

/// [`CommandMeter::fit_sync`] on one encoder, which the caller rewinds afterwards.
fn fit_sync_in<E: Sink + ErrorOf>(
    e: &mut E,
    sync: &Sync,
    room: usize,
    written: impl Fn(&E) -> usize,
) -> Result<SyncFit, EncodeError> {
    let before = written(e);
    sync.write_head(e);
    let head = written(e) - before;
    // What closing the Sync takes (`END`, or `</Sync>`), found on a copy of the head
    // alone: the shell's size.
    let close = {
        let w = written(e);
        e.end();
        let c = written(e) - w;
        if let Some(err) = e.err() {
            return Err(err);
        }
        c
    };
    let shell = head + close + 2;
    // Reopen: write the head again after the closed shell, and count from there.
    let start = written(e);
    sync.write_head(e);
    let mut fit = SyncFit {
        commands: 0,
        size: shell,
    };
    for c in &sync.commands {
        c.write(e);
        if let Some(err) = e.err() {
            return Err(err);
        }
        let size = written(e) - start + close + 2;
        if size > room {
            break;
        }
        fit = SyncFit {
            commands: fit.commands + 1,
            size,
        };
    }
    e.end();
    Ok(fit)
}

/// The first error an encoder met, for the meter.
trait ErrorOf {
    fn err(&self) -> Option<EncodeError>;
}

impl ErrorOf for xml::Encoder {
    fn err(&self) -> Option<EncodeError> {
        self.error().map(|e| EncodeError::from(e.clone()))
    }
}

impl ErrorOf for wbxml::Encoder {
    fn err(&self) -> Option<EncodeError> {
        self.error().map(|e| EncodeError::from(e.clone()))
    }
}

/// Cut an item whose data exceeds `max_chunk` bytes into large-object chunks: every
/// chunk keeps the item's Target/Source, the first carries its `Meta` with `Size` set to
/// the whole object's size, all but the last carry `MoreData`. Text is cut on character
/// boundaries. An item that fits is returned unchanged.
pub fn chunk_item(item: Item, max_chunk: usize) -> Result<Vec<Item>, SizeError> {
    if max_chunk == 0 {
        return Err(SizeError::ZeroChunk);
    }
    let total = match &item.data {
        Some(Data::Text(t)) => t.len(),
        Some(Data::Binary(b)) => b.len(),
        _ => return Err(SizeError::NotChunkable),
    };
    if total <= max_chunk {
        return Ok(vec![item]);
    }
    let mut shell = item.clone();
    shell.data = None;
    shell.meta = None;
    shell.more_data = false;
    let pieces: Vec<Data> = match item.data {
        Some(Data::Text(t)) => {
            let mut v = Vec::new();
            let mut rest = t.as_str();
            while !rest.is_empty() {
                let mut cut = max_chunk.min(rest.len());
                while !rest.is_char_boundary(cut) {
                    cut -= 1;
                }
                if cut == 0 {
                    // A character longer than the chunk: take it whole.
                    cut = rest.chars().next().map_or(rest.len(), char::len_utf8);
                }
                v.push(Data::Text(rest[..cut].to_string()));
                rest = &rest[cut..];
            }
            v
        }
        Some(Data::Binary(b)) => b
            .chunks(max_chunk)
            .map(|c| Data::Binary(c.to_vec()))
            .collect(),
        _ => return Err(SizeError::NotChunkable),
    };
    let n = pieces.len();
    let mut out = Vec::with_capacity(n);
    for (i, data) in pieces.into_iter().enumerate() {
        let mut c = shell.clone();
        if i == 0 {
            let mut meta = item.meta.clone().unwrap_or_default();
            meta.size = Some(total as u64);
            c.meta = Some(meta);
        }
        c.data = Some(data);
        c.more_data = i + 1 < n;
        out.push(c);
    }
    Ok(out)
}

/// What [`Reassembler::push`] made of a chunk.
// The item is moved straight out by the caller; boxing it would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// More chunks are expected: answer 213 (Chunked item accepted and buffered).
    NeedMore,
    /// The object is complete (or was never chunked): process it.
    Complete(Item),
}

#[derive(Debug, Clone)]
struct Pending {
    first: Item,
    declared: u64,
    bytes: Vec<u8>,
    text: bool,
}

/// Puts large objects back together from `MoreData` chunks, checking the declared size
/// against our `MaxObjSize` and against what arrives (LOB rules).
#[derive(Debug, Clone, Default)]
pub struct Reassembler {
    max_obj_size: Option<u64>,
    pending: Option<Pending>,
}

fn key(item: &Item) -> (Option<&str>, Option<&str>) {
    (
        item.target.as_ref().map(|t| t.loc_uri.as_str()),
        item.source.as_ref().map(|s| s.loc_uri.as_str()),
    )
}

impl Reassembler {
    /// A reassembler that refuses objects declared larger than `max_obj_size`.
    pub fn new(max_obj_size: Option<u64>) -> Reassembler {
        Reassembler {
            max_obj_size,
            pending: None,
        }
    }

    /// True while a chunked object is incomplete (it can span messages).
    pub fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Drops an incomplete object (for example when the session ends without its last
    /// chunk).
    pub fn abandon(&mut self) {
        self.pending = None;
    }

    /// Feeds one item (chunked or not).
    pub fn push(&mut self, item: Item) -> Result<ChunkOutcome, ChunkError> {
        if let Some(p) = &self.pending {
            if key(&p.first) != key(&item) {
                self.pending = None;
                return Err(ChunkError::NoEndOfData);
            }
        }
        let (bytes, text): (Vec<u8>, bool) = match item.data.clone() {
            Some(Data::Text(t)) => (t.into_bytes(), true),
            Some(Data::Binary(b)) => (b, false),
            None => (Vec::new(), false),
            Some(_) if self.pending.is_none() && !item.more_data => {
                return Ok(ChunkOutcome::Complete(item))
            }
            Some(_) => return Err(ChunkError::BadData),
        };
        let pending = match self.pending.take() {
            Some(mut p) => {
                p.bytes.extend_from_slice(&bytes);
                p.text &= text;
                p
            }
            None => {
                if !item.more_data {
                    return Ok(ChunkOutcome::Complete(item));
                }
                let declared = item
                    .meta
                    .as_ref()
                    .and_then(|m: &Meta| m.size)
                    .ok_or(ChunkError::SizeRequired)?;
                if let Some(max) = self.max_obj_size {
                    if declared > max {
                        return Err(ChunkError::TooLarge { declared, max });
                    }
                }
                Pending {
                    first: item.clone(),
                    declared,
                    bytes,
                    text,
                }
            }
        };
        let received = pending.bytes.len() as u64;
        if received > pending.declared {
            return Err(ChunkError::SizeMismatch {
                declared: pending.declared,
                received,
            });
        }
        if item.more_data {
            self.pending = Some(pending);
            return Ok(ChunkOutcome::NeedMore);
        }
        if received != pending.declared {
            return Err(ChunkError::SizeMismatch {
                declared: pending.declared,
                received,
            });
        }
        let mut whole = pending.first;
        whole.more_data = false;
        whole.data = Some(if pending.text {
            match String::from_utf8(pending.bytes) {
                Ok(s) => Data::Text(s),
                Err(e) => Data::Binary(e.into_bytes()),
            }
        } else {
            Data::Binary(pending.bytes)
        });
        Ok(ChunkOutcome::Complete(whole))
    }
}
