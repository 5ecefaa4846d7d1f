//! Message-size tools (LOB rules): splitting a package under MaxMsgSize, chunking large
//! objects under MaxObjSize/MaxMsgSize and reassembling them with size checks.

#[path = "../benches/support.rs"]
mod support;

use syncml_core::model::{Command, Data, Item, Meta, Source, Target};
use syncml_core::size::{
    chunk_item, encoded_len, split_commands, split_first, ChunkError, ChunkOutcome, Reassembler,
    SizeError,
};
use syncml_core::{Encoding, StatusCode};

fn template() -> syncml_core::SyncMl {
    let mut m = support::big_message(0);
    m.body.commands.truncate(1); // the SyncHdr Status goes first
    m
}

fn sync_of(n: usize) -> Command {
    support::big_message(n).body.commands.remove(1)
}

fn assemble(t: &syncml_core::SyncMl, cmds: Vec<Command>, first: bool) -> syncml_core::SyncMl {
    let mut m = t.clone();
    if !first {
        m.body.commands.clear();
    }
    m.body.commands.extend(cmds);
    m.body.is_final = true;
    m
}

#[test]
fn split_keeps_every_message_under_max_msg_size() {
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let t = template();
        let max = 20_000;
        let parts = split_commands(&t, vec![sync_of(300)], max, enc).expect("split");
        assert!(parts.len() > 4, "{enc:?}: {} parts", parts.len());
        let mut adds = 0;
        for (i, p) in parts.iter().enumerate() {
            let m = assemble(&t, p.clone(), i == 0);
            let len = encoded_len(&m, enc).expect("len");
            assert!(len <= max, "{enc:?} message {i} is {len} bytes");
            for c in p {
                if let Command::Sync(s) = c {
                    assert_eq!(
                        s.target.as_ref().map(|t| t.loc_uri.as_str()),
                        Some("./contacts")
                    );
                    adds += s.commands.len();
                }
            }
        }
        assert_eq!(adds, 300, "every Add is sent exactly once");
    }
}

/// The Add CmdIDs of a command list, Syncs flattened.
fn add_ids(cmds: &[Command]) -> Vec<String> {
    cmds.iter()
        .flat_map(|c| match c {
            Command::Sync(s) => s.commands.iter().map(|c| c.cmd_id().to_string()).collect(),
            other => vec![other.cmd_id().to_string()],
        })
        .collect()
}

#[test]
fn split_first_is_the_first_message_and_leaves_the_rest_in_order() {
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let t = template();
        let all = split_commands(&t, vec![sync_of(300)], 20_000, enc).expect("split");
        let (first, rest) = split_first(&t, vec![sync_of(300)], 20_000, enc).expect("first");
        assert_eq!(first, all[0], "{enc:?}");
        let later: Vec<Command> = all[1..].iter().flatten().cloned().collect();
        assert_eq!(add_ids(&rest), add_ids(&later), "{enc:?}");
        // A package that fits leaves nothing.
        let (one, none) = split_first(&t, vec![sync_of(3)], 20_000, enc).expect("first");
        assert_eq!(add_ids(&one).len(), 3);
        assert!(none.is_empty());
    }
}

#[test]
fn split_keeps_command_order() {
    let t = template();
    let parts = split_commands(&t, vec![sync_of(50)], 8_000, Encoding::Wbxml).expect("split");
    let ids: Vec<String> = parts
        .iter()
        .flatten()
        .flat_map(|c| match c {
            Command::Sync(s) => s.commands.iter().map(|c| c.cmd_id().to_string()).collect(),
            other => vec![other.cmd_id().to_string()],
        })
        .collect();
    let want: Vec<String> = (3..53).map(|i| i.to_string()).collect();
    assert_eq!(ids, want);
}

#[test]
fn a_package_that_fits_is_one_message() {
    let t = template();
    let parts = split_commands(&t, vec![sync_of(3)], 150_000, Encoding::Wbxml).expect("split");
    assert_eq!(parts.len(), 1);
}

#[test]
fn a_command_larger_than_a_message_is_refused() {
    let t = template();
    let mut empty = t.clone();
    empty.body.is_final = true;
    let room = encoded_len(&empty, Encoding::Wbxml).expect("len") + 100;
    let err = split_commands(&t, vec![sync_of(1)], room, Encoding::Wbxml).expect_err("too big");
    assert!(matches!(err, SizeError::CommandTooLarge { .. }), "{err}");
}

#[test]
fn a_header_larger_than_max_msg_size_is_refused() {
    let t = template();
    let err = split_commands(&t, vec![], 50, Encoding::Xml).expect_err("too big");
    assert!(matches!(err, SizeError::HeaderTooLarge { .. }), "{err}");
}

fn big_item(len: usize) -> Item {
    Item {
        target: Some(Target {
            loc_uri: "photo1".into(),
            ..Target::default()
        }),
        source: Some(Source {
            loc_uri: "42".into(),
            loc_name: None,
        }),
        meta: Some(Meta {
            r#type: Some("image/jpeg".into()),
            ..Meta::default()
        }),
        data: Some(Data::Binary((0..len).map(|i| (i % 251) as u8).collect())),
        ..Item::default()
    }
}

#[test]
fn first_chunk_carries_the_size_and_all_but_the_last_carry_moredata() {
    let chunks = chunk_item(big_item(10_001), 1_000).expect("chunk");
    assert_eq!(chunks.len(), 11);
    assert_eq!(chunks[0].meta.as_ref().and_then(|m| m.size), Some(10_001));
    assert!(chunks[1..].iter().all(|c| c.meta.is_none()));
    assert!(chunks[..10].iter().all(|c| c.more_data));
    assert!(!chunks[10].more_data);
    assert!(chunks
        .iter()
        .all(|c| c.target.as_ref().map(|t| t.loc_uri.as_str()) == Some("photo1")));
}

#[test]
fn chunks_reassemble_to_the_original() {
    let item = big_item(70_000);
    let mut r = Reassembler::new(Some(1 << 20));
    let mut out = None;
    let chunks = chunk_item(item.clone(), 4096).expect("chunk");
    let n = chunks.len();
    for (i, c) in chunks.into_iter().enumerate() {
        match r.push(c).expect("accepted") {
            ChunkOutcome::NeedMore => assert!(i + 1 < n),
            ChunkOutcome::Complete(x) => out = Some(x),
        }
    }
    let whole = out.expect("complete");
    assert_eq!(whole.data, item.data);
    assert!(!whole.more_data);
    assert_eq!(
        whole.meta.as_ref().and_then(|m| m.r#type.as_deref()),
        Some("image/jpeg")
    );
}

#[test]
fn text_is_chunked_on_character_boundaries() {
    let text: String = "Grüße aus München, 東京 😀 ".repeat(100);
    let item = Item {
        data: Some(Data::Text(text.clone())),
        ..Item::default()
    };
    let chunks = chunk_item(item, 7).expect("chunk");
    let mut r = Reassembler::new(None);
    let mut got = None;
    for c in chunks {
        if let ChunkOutcome::Complete(x) = r.push(c).expect("ok") {
            got = x.data;
        }
    }
    assert_eq!(got, Some(Data::Text(text)));
}

#[test]
fn size_mismatch_is_status_424() {
    let mut chunks = chunk_item(big_item(5_000), 1_000).expect("chunk");
    chunks.remove(2);
    let mut r = Reassembler::new(None);
    let mut last = Ok(ChunkOutcome::NeedMore);
    for c in chunks {
        last = r.push(c);
    }
    let err = last.expect_err("mismatch");
    assert!(matches!(
        err,
        ChunkError::SizeMismatch {
            declared: 5000,
            received: 4000
        }
    ));
    assert_eq!(err.status(), StatusCode(424));
}

#[test]
fn object_over_max_obj_size_is_status_416() {
    let chunks = chunk_item(big_item(5_000), 1_000).expect("chunk");
    let mut r = Reassembler::new(Some(4_999));
    let err = r.push(chunks[0].clone()).expect_err("too large");
    assert_eq!(err.status(), StatusCode(416));
}

#[test]
fn first_chunk_without_size_is_status_411() {
    let mut chunks = chunk_item(big_item(5_000), 1_000).expect("chunk");
    chunks[0].meta = None;
    let err = Reassembler::new(None)
        .push(chunks[0].clone())
        .expect_err("no size");
    assert_eq!(err.status(), StatusCode(411));
}

#[test]
fn another_item_before_the_last_chunk_is_no_end_of_data() {
    let chunks = chunk_item(big_item(5_000), 1_000).expect("chunk");
    let mut r = Reassembler::new(None);
    r.push(chunks[0].clone()).expect("first");
    let mut other = big_item(10);
    other.target = Some(Target {
        loc_uri: "other".into(),
        ..Target::default()
    });
    let err = r.push(other).expect_err("interleaved");
    assert_eq!(err.status(), StatusCode(223));
    assert!(!r.is_pending());
}

#[test]
fn an_unchunked_item_passes_through() {
    let item = big_item(10);
    assert_eq!(
        Reassembler::new(Some(5)).push(item.clone()).expect("ok"),
        ChunkOutcome::Complete(item)
    );
}

/// LOB: a message holds as many of a long Sync's commands as fit: putting the next one
/// in would take it over MaxMsgSize (the meter writes the commands one after the other,
/// as the message does, so its count is tight).
#[test]
fn split_fills_each_message_before_opening_the_next() {
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let t = template();
        let max = 20_000;
        let parts = split_commands(&t, vec![sync_of(300)], max, enc).expect("split");
        for i in 0..parts.len() - 1 {
            let Some(Command::Sync(next)) = parts[i + 1].last() else {
                panic!("{enc:?}: message {} holds no Sync", i + 1);
            };
            let mut fuller = parts[i].clone();
            let Some(Command::Sync(s)) = fuller.last_mut() else {
                panic!("{enc:?}: message {i} holds no Sync");
            };
            s.commands.push(next.commands[0].clone());
            let len = encoded_len(&assemble(&t, fuller, i == 0), enc).expect("len");
            assert!(
                len > max,
                "{enc:?}: message {i} had room for one more ({len} <= {max})"
            );
        }
    }
}

/// What the meter says a Sync with its first commands takes is what it adds to a message
/// (up to the code-page allowance of 2 bytes), and one more command would not fit.
#[test]
fn fit_sync_is_what_the_sync_adds_to_the_message() {
    use syncml_core::size::CommandMeter;
    for enc in [Encoding::Wbxml, Encoding::Xml] {
        let t = template();
        let base = encoded_len(&t, enc).expect("len");
        let Command::Sync(sync) = sync_of(40) else {
            panic!("not a Sync");
        };
        for room in [50, 2_000, 7_777, 1_000_000] {
            let mut meter = CommandMeter::new(&t, enc);
            let fit = meter.fit_sync(&sync, room).expect("fit");
            let mut part = sync.clone();
            part.commands.truncate(fit.commands);
            let mut m = t.clone();
            m.body.commands.push(Command::Sync(part.clone()));
            let grown = encoded_len(&m, enc).expect("len") - base;
            assert!(
                fit.size >= grown && fit.size <= grown + 2,
                "{enc:?} room {room}: meter {} for {} commands, message grew {grown}",
                fit.size,
                fit.commands
            );
            if fit.commands < sync.commands.len() {
                part.commands.push(sync.commands[fit.commands].clone());
                let mut m = t.clone();
                m.body.commands.push(Command::Sync(part));
                let more = encoded_len(&m, enc).expect("len") - base;
                assert!(
                    more + 2 > room,
                    "{enc:?} room {room}: one more fits ({more})"
                );
            } else {
                assert!(fit.size <= room || room == 50);
            }
        }
    }
}
