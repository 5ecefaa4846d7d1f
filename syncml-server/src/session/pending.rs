//! Package 4 not sent yet, kept beside the session record: one [`PendingCommand`] per
//! command (PostgreSQL stores each as a row, SQLite up to 64 and 16 KiB to a row), so that
//! each message of a long package 4 reads, decodes and removes only about what it sends,
//! and the session record stays small.
//!
//! A row holds one command of a `Sync` together with that `Sync`'s shell (Target, Source,
//! NumberOfChanges as they went into the first message), encoded as a WBXML message of
//! its own; a `Sync` without commands is one row of the shell alone. The CmdIDs of the
//! rows' commands (and of each shell) are the rows' `seq`s until they are renumbered on
//! sending: what a message sent is read off the CmdIDs it took.
//!
//! An `Add` of a whole item (most of a download) is kept **by reference**: the row holds
//! no data, only the item's datastore, GUID and revision, and the command is built again
//! from the store when it goes out ([`decode`]'s `rebuild`). A long package 4 then writes
//! a few bytes per item to the store instead of the item again. If the item changed or
//! went away in the meantime, its row is skipped: its newer revision is above the mark
//! this session sets, so the next session sends what became of it.

use std::collections::HashMap;

use syncml_core::model::{Command, Sync, SyncBody, SyncHdr, SyncMl};
use syncml_core::size::CommandMeter;
use syncml_core::tree::SyncMlVersion;
use syncml_core::Encoding;

use super::state::SentItem;
use crate::store::{PendingCommand, StoreError};

/// Numbers package 4 as built: every command of every `Sync` gets the next `seq` as its
/// CmdID, a `Sync` the `seq` of its first command (or the next one when it has none).
/// `built` answers, for a CmdID as built, the item the command sends and, for a planned
/// Add (see [`rows`]), its estimated size; both are returned by `seq`.
pub(super) fn number(
    cmds: &mut [Command],
    mut built: impl FnMut(&str) -> Option<(SentItem, Option<i64>)>,
) -> (HashMap<i64, SentItem>, HashMap<i64, i64>) {
    let mut items = HashMap::new();
    let mut sizes = HashMap::new();
    let mut seq: i64 = 0;
    let mut take = |seq: i64, c: &mut Command| {
        if let Some((item, size)) = built(c.cmd_id()) {
            items.insert(seq, item);
            if let Some(size) = size {
                sizes.insert(seq, size);
            }
        }
        c.set_cmd_id(seq.to_string());
    };
    for c in cmds.iter_mut() {
        match c {
            Command::Sync(sync) => {
                let first = seq;
                for inner in &mut sync.commands {
                    take(seq, inner);
                    seq += 1;
                }
                if sync.commands.is_empty() {
                    seq += 1;
                }
                sync.cmd_id = first.to_string();
            }
            other => {
                take(seq, other);
                seq += 1;
            }
        }
    }
    (items, sizes)
}

/// The `seq` a CmdID given by [`number`] stands for.
pub(super) fn seq_of(cmd_id: &str) -> Result<i64, StoreError> {
    cmd_id
        .trim()
        .parse()
        .map_err(|_| StoreError::Corrupt(format!("pending package 4: CmdID {cmd_id:?}")))
}

/// The `seq`s a message took: those of the commands in `sent` (before renumbering).
pub(super) fn sent_seqs(sent: &[Command]) -> Result<Vec<i64>, StoreError> {
    let mut out = Vec::new();
    for c in sent {
        match c {
            Command::Sync(sync) => {
                if sync.commands.is_empty() {
                    out.push(seq_of(&sync.cmd_id)?);
                }
                for inner in &sync.commands {
                    out.push(seq_of(inner.cmd_id())?);
                }
            }
            other => out.push(seq_of(other.cmd_id())?),
        }
    }
    Ok(out)
}

/// The message a row's command is wrapped in: a fixed, minimal header.
fn holder(cmd: Command) -> SyncMl {
    SyncMl {
        header: SyncHdr::new(SyncMlVersion::default(), "0", "0", "p", "p"),
        body: SyncBody {
            commands: vec![cmd],
            is_final: false,
        },
    }
}

/// What a row's size is measured with: the command's bytes inside a message (WBXML).
pub(super) fn meter() -> CommandMeter {
    CommandMeter::new(&holder(Command::Sync(Sync::default())), Encoding::Wbxml)
}

/// How many of `rows` (from the first) make about a message's worth by their sizes: as
/// many as [`crate::store::Tx::session_pending_head`] reads for `budget`.
pub(super) fn head_len(rows: &[PendingCommand], budget: u64) -> usize {
    let mut total: u64 = 0;
    rows.iter()
        .take_while(|r| {
            let more = total < budget;
            total = total.saturating_add(r.size.max(1) as u64);
            more
        })
        .count()
}

fn encode(cmd: Command) -> Result<Vec<u8>, StoreError> {
    syncml_core::encode(&holder(cmd), Encoding::Wbxml)
        .map_err(|e| StoreError::Backend(format!("pending package 4: {e}")))
}

/// The rows of `rest` (numbered by [`number`]), in order. A row's `size` is what its
/// command adds to a message (the shell's bytes are counted once, on a row of a shell
/// alone), so a message's worth of rows is about a message's worth of commands.
///
/// Whole-item `Add`s that deliver an item of `items` become rows by reference (see the
/// module docs); chunks of a large object never do. `continues_chunk`: the message
/// before `rest` ended with a chunk that has more to follow, so `rest` begins with the
/// next chunk of that object.
///
/// `planned`: the `seq`s of *planned* Adds, with their estimated sizes. A download
/// plans its Adds from the items' sizes without reading their data (the command holds
/// no data yet); they become rows by reference of that size, unmeasured.
pub(super) fn rows(
    rest: Vec<Command>,
    items: &HashMap<i64, SentItem>,
    continues_chunk: bool,
    planned: &HashMap<i64, i64>,
) -> Result<Vec<PendingCommand>, StoreError> {
    let rows_needed = rest
        .iter()
        .map(|c| match c {
            Command::Sync(s) => s.commands.len().max(1),
            _ => 1,
        })
        .sum();
    let mut out = Vec::with_capacity(rows_needed);
    let bare = encode(Command::Sync(Sync::default()))?.len() as i64;
    // A row by reference stores no encoding, only its size: measured, not encoded.
    let mut meter = meter();
    let row = |seq: i64, data: Vec<u8>, size: i64| {
        let item = items.get(&seq);
        PendingCommand {
            seq,
            size: size.max(1),
            datastore: item.map(|i| i.datastore.clone()),
            guid: item.map(|i| i.guid.clone()),
            revision: item.map(|i| i.revision),
            data,
        }
    };
    // Whether the command before this one was a chunk with more to follow.
    let mut after_chunk = continues_chunk;
    for c in rest {
        match c {
            Command::Sync(mut sync) => {
                let inner = std::mem::take(&mut sync.commands);
                let shell_only = encode(Command::Sync(sync.clone()))?;
                if inner.is_empty() {
                    let seq = seq_of(&sync.cmd_id)?;
                    let size = shell_only.len() as i64 - bare;
                    out.push(row(seq, shell_only, size));
                    continue;
                }
                let base = shell_only.len() as i64;
                for cmd in inner {
                    let seq = seq_of(cmd.cmd_id())?;
                    if let (Some(size), true) = (planned.get(&seq), items.contains_key(&seq)) {
                        after_chunk = false;
                        out.push(row(seq, Vec::new(), *size));
                        continue;
                    }
                    let more_data = cmd.items().first().is_some_and(|i| i.more_data);
                    let by_reference = !after_chunk
                        && !more_data
                        && items.contains_key(&seq)
                        && matches!(&cmd, Command::Add(ic) if ic.items.len() == 1);
                    after_chunk = more_data;
                    if by_reference {
                        let size = meter
                            .measure(&cmd)
                            .map_err(|e| StoreError::Backend(format!("pending package 4: {e}")))?
                            .saturating_sub(2);
                        out.push(row(seq, Vec::new(), size as i64));
                        continue;
                    }
                    let mut one = sync.clone();
                    one.cmd_id = seq.to_string();
                    one.commands = vec![cmd];
                    let data = encode(Command::Sync(one))?;
                    let size = data.len() as i64 - base;
                    out.push(row(seq, data, size));
                }
            }
            other => {
                after_chunk = false;
                let seq = seq_of(other.cmd_id())?;
                let data = encode(other)?;
                let size = data.len() as i64 - bare;
                out.push(row(seq, data, size));
            }
        }
    }
    Ok(out)
}

/// Whether a row holds an `Add` by reference (no encoded command; see the module docs).
pub(super) fn is_reference(row: &PendingCommand) -> bool {
    row.data.is_empty()
}

/// What [`decode`] makes of a message's worth of rows.
pub(super) struct Decoded {
    /// The commands, in order; consecutive parts of one `Sync` joined again.
    pub cmds: Vec<Command>,
    /// The item each `seq` sends.
    pub items: HashMap<i64, SentItem>,
    /// Rows by reference whose item changed or went away since package 4 was built:
    /// nothing goes out for them.
    pub skipped: Vec<i64>,
}

/// The commands of `rows`. A row by reference is built again by `rebuild` (the `Add`,
/// CmdID as [`number`] gave it), or skipped when it answers `None`; `shell` gives the
/// `Sync` it goes in (without commands). Consecutive rows of one datastore share one
/// `Sync`.
pub(super) fn decode(
    rows: &[PendingCommand],
    mut rebuild: impl FnMut(&PendingCommand) -> Result<Option<Command>, StoreError>,
    mut shell: impl FnMut(&PendingCommand) -> Result<Sync, StoreError>,
) -> Result<Decoded, StoreError> {
    let mut cmds: Vec<Command> = Vec::new();
    let mut items = HashMap::with_capacity(rows.len());
    let mut skipped = Vec::new();
    // The datastore of the Sync that the last rebuilt row went into, while it is the
    // last command.
    let mut open: Option<&str> = None;
    for r in rows {
        if is_reference(r) {
            let Some(cmd) = rebuild(r)? else {
                skipped.push(r.seq);
                continue;
            };
            match (cmds.last_mut(), open) {
                (Some(Command::Sync(sync)), Some(ds)) if r.datastore.as_deref() == Some(ds) => {
                    sync.commands.push(cmd)
                }
                _ => {
                    let mut sync = shell(r)?;
                    sync.commands.reserve(rows.len());
                    sync.commands.push(cmd);
                    cmds.push(Command::Sync(sync));
                    open = r.datastore.as_deref();
                }
            }
        } else {
            let msg = syncml_core::decode(&r.data)
                .map_err(|e| StoreError::Corrupt(format!("pending package 4: {e}")))?;
            cmds.extend(msg.body.commands);
            open = None;
        }
        if let (Some(datastore), Some(guid), Some(revision)) = (&r.datastore, &r.guid, r.revision) {
            items.insert(
                r.seq,
                SentItem {
                    datastore: datastore.clone(),
                    guid: guid.clone(),
                    revision,
                },
            );
        }
    }
    Ok(Decoded {
        cmds: super::merge_syncs(cmds),
        items,
        skipped,
    })
}

/// Whether a row is one chunk of a large object with more to follow.
pub(super) fn is_leading_chunk(row: &PendingCommand) -> Result<Option<bool>, StoreError> {
    if is_reference(row) {
        return Ok(None);
    }
    let msg = syncml_core::decode(&row.data)
        .map_err(|e| StoreError::Corrupt(format!("pending package 4: {e}")))?;
    Ok(match msg.body.commands.first() {
        Some(Command::Sync(s)) => s
            .commands
            .first()
            .map(|c| c.items().first().is_some_and(|i| i.more_data)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syncml_core::model::{Data, Item, ItemCommand, Meta, Source, Target};

    fn add(seq: i64, guid: &str, data: &str) -> Command {
        Command::Add(ItemCommand {
            cmd_id: seq.to_string(),
            meta: Some(Meta::of_type("text/vcard".to_string())),
            items: vec![Item {
                source: Some(Source::new(guid.to_string())),
                data: Some(Data::Text(data.to_string())),
                ..Item::default()
            }],
            ..ItemCommand::default()
        })
    }

    /// The size of a row by reference is measured, not encoded: it must still be what its
    /// command adds to a message, as for a row that holds its encoding.
    #[test]
    fn a_row_by_reference_has_the_size_of_its_command_encoded() {
        let sync = Sync {
            cmd_id: "0".into(),
            target: Some(Target::new("./contacts")),
            source: Some(Source::new("./contacts")),
            number_of_changes: Some(3),
            commands: vec![
                add(0, "g0", "BEGIN:VCARD\r\nFN:A\r\nEND:VCARD\r\n"),
                add(1, "g1", &"x".repeat(300)),
                add(2, "g2", "ü€ text beyond ASCII"),
            ],
            ..Sync::default()
        };
        let items: HashMap<i64, SentItem> = (0..3)
            .map(|i| {
                let item = SentItem {
                    datastore: "contacts".into(),
                    guid: format!("g{i}"),
                    revision: i + 1,
                };
                (i, item)
            })
            .collect();
        let rows = rows(
            vec![Command::Sync(sync.clone())],
            &items,
            false,
            &HashMap::new(),
        )
        .expect("rows");
        assert_eq!(rows.len(), 3);
        let mut shell = sync.clone();
        shell.commands.clear();
        let base = encode(Command::Sync(shell.clone())).expect("shell").len() as i64;
        for (row, cmd) in rows.iter().zip(&sync.commands) {
            assert!(is_reference(row), "seq {}", row.seq);
            let mut one = shell.clone();
            one.commands = vec![cmd.clone()];
            let encoded = encode(Command::Sync(one)).expect("one").len() as i64;
            assert_eq!(row.size, encoded - base, "seq {}", row.seq);
        }
    }
}
