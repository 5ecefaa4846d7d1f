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

use std::collections::{BTreeMap, HashMap};

use syncml_core::model::{Command, Sync, SyncBody, SyncHdr, SyncMl};
use syncml_core::size::CommandMeter;
use syncml_core::tree::SyncMlVersion;
use syncml_core::Encoding;

use super::state::SentItem;
use crate::store::{PendingCommand, StoreError};

/// Numbers package 4 as built: every command of every `Sync` gets the next `seq` as its
/// CmdID, a `Sync` the `seq` of its first command (or the next one when it has none).
/// `built` maps the CmdIDs as built to the items they send; returns them by `seq`.
pub(super) fn number(
    cmds: &mut [Command],
    built: &BTreeMap<String, SentItem>,
) -> HashMap<i64, SentItem> {
    let mut items = HashMap::new();
    let mut seq: i64 = 0;
    for c in cmds.iter_mut() {
        match c {
            Command::Sync(sync) => {
                let first = seq;
                for inner in &mut sync.commands {
                    if let Some(item) = built.get(inner.cmd_id()) {
                        items.insert(seq, item.clone());
                    }
                    inner.set_cmd_id(seq.to_string());
                    seq += 1;
                }
                if sync.commands.is_empty() {
                    seq += 1;
                }
                sync.cmd_id = first.to_string();
            }
            other => {
                if let Some(item) = built.get(other.cmd_id()) {
                    items.insert(seq, item.clone());
                }
                other.set_cmd_id(seq.to_string());
                seq += 1;
            }
        }
    }
    items
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
pub(super) fn rows(
    rest: Vec<Command>,
    items: &HashMap<i64, SentItem>,
    continues_chunk: bool,
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
    let mut meter = CommandMeter::new(&holder(Command::Sync(Sync::default())), Encoding::Wbxml);
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

/// The commands of `rows`. A row by reference is built again by `rebuild` (a `Sync`
/// shell holding the `Add`, CmdIDs as [`number`] gave them), or skipped when it
/// answers `None`.
pub(super) fn decode(
    rows: &[PendingCommand],
    mut rebuild: impl FnMut(&PendingCommand) -> Result<Option<Command>, StoreError>,
) -> Result<Decoded, StoreError> {
    let mut cmds: Vec<Command> = Vec::with_capacity(rows.len());
    let mut items = HashMap::new();
    let mut skipped = Vec::new();
    for r in rows {
        if is_reference(r) {
            match rebuild(r)? {
                Some(cmd) => cmds.push(cmd),
                None => {
                    skipped.push(r.seq);
                    continue;
                }
            }
        } else {
            let msg = syncml_core::decode(&r.data)
                .map_err(|e| StoreError::Corrupt(format!("pending package 4: {e}")))?;
            cmds.extend(msg.body.commands);
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
        let rows = rows(vec![Command::Sync(sync.clone())], &items, false).expect("rows");
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
