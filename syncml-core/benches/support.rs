//! The realistic benchmark message: a server's package 4 carrying 2,000 contacts, one
//! `Add` per contact (as Synthesis sends them), each a ~350-byte vCard 2.1.

use syncml_core::model::*;
use syncml_core::StatusCode;

/// A ~350-byte vCard 2.1, unique per `i`.
pub fn vcard(i: usize) -> String {
    let mut v = format!(
        "BEGIN:VCARD\r\nVERSION:2.1\r\nN:Lastname{i:05};Firstname{i:05};;;\r\n\
         FN:Firstname{i:05} Lastname{i:05}\r\nTEL;CELL:+44 7700 9{i:05}\r\n\
         TEL;WORK:+44 20 7946 {i:05}\r\nEMAIL;INTERNET:first.last{i:05}@example.com\r\n\
         ADR;HOME:;;{i} High Street;London;;SW1A 1AA;United Kingdom\r\n\
         ORG:Example Corp;Sales\r\nTITLE:Account Manager\r\n\
         NOTE:Met at the trade fair, prefers email.\r\nEND:VCARD\r\n"
    );
    while v.len() < 350 {
        v.insert(v.len() - 11, ' ');
    }
    v
}

/// The 2,000-item Sync message.
pub fn big_message(items: usize) -> SyncMl {
    let adds: Vec<Command> = (0..items)
        .map(|i| {
            Command::Add(ItemCommand {
                cmd_id: (i + 3).to_string(),
                meta: Some(Meta {
                    r#type: Some("text/x-vcard".into()),
                    ..Meta::default()
                }),
                items: vec![Item {
                    source: Some(Source {
                        loc_uri: format!("{}", 100_000 + i),
                        loc_name: None,
                    }),
                    data: Some(Data::Binary(vcard(i).into_bytes())),
                    ..Item::default()
                }],
                ..ItemCommand::default()
            })
        })
        .collect();
    SyncMl {
        header: SyncHdr {
            ver_dtd: "1.2".into(),
            ver_proto: "SyncML/1.2".into(),
            session_id: "42".into(),
            msg_id: "2".into(),
            target: Target {
                loc_uri: "IMEI:356938035643809".into(),
                ..Target::default()
            },
            source: Source {
                loc_uri: "http://127.0.0.1:8080/sync".into(),
                loc_name: None,
            },
            ..SyncHdr::default()
        },
        body: SyncBody {
            commands: vec![
                Command::Status(Status {
                    target_refs: vec!["http://127.0.0.1:8080/sync".into()],
                    source_refs: vec!["IMEI:356938035643809".into()],
                    ..Status::new("1", "2", "0", "SyncHdr", StatusCode(200))
                }),
                Command::Sync(Sync {
                    cmd_id: "2".into(),
                    target: Some(Target {
                        loc_uri: "./contacts".into(),
                        ..Target::default()
                    }),
                    source: Some(Source {
                        loc_uri: "./contacts".into(),
                        loc_name: None,
                    }),
                    number_of_changes: Some(items as u32),
                    commands: adds,
                    ..Sync::default()
                }),
            ],
            is_final: true,
        },
    }
}

/// A client's answer to `items` Adds of a package 4 (as SyncEvolution sends them during a
/// download): one `Status` per Add, with its TargetRef (the server's ID), then a `Map`
/// of the IDs it gave them.
#[allow(dead_code)] // the size tests share this file and use only `big_message`
pub fn status_message(items: usize) -> SyncMl {
    let mut commands: Vec<Command> = vec![Command::Status(Status {
        target_refs: vec!["IMEI:356938035643809".into()],
        source_refs: vec!["http://127.0.0.1:8080/sync".into()],
        ..Status::new("1", "2", "0", "SyncHdr", StatusCode(200))
    })];
    commands.extend((0..items).map(|i| {
        Command::Status(Status {
            source_refs: vec![format!("{}", 100_000 + i)],
            ..Status::new(
                (i + 2).to_string(),
                "2",
                (i + 3).to_string(),
                "Add",
                StatusCode(201),
            )
        })
    }));
    commands.push(Command::Map(Map {
        cmd_id: (items + 2).to_string(),
        target: Target::new("./contacts"),
        source: Source::new("./addressbook"),
        cred: None,
        meta: None,
        map_items: (0..items)
            .map(|i| MapItem::new(format!("{}", 100_000 + i), i.to_string()))
            .collect(),
    }));
    SyncMl {
        header: SyncHdr {
            ver_dtd: "1.2".into(),
            ver_proto: "SyncML/1.2".into(),
            session_id: "42".into(),
            msg_id: "3".into(),
            target: Target::new("http://127.0.0.1:8080/sync"),
            source: Source::new("IMEI:356938035643809"),
            ..SyncHdr::default()
        },
        body: SyncBody {
            commands,
            is_final: false,
        },
    }
}
