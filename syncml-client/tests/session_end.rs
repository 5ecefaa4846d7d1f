//! The end of a session whose package 4 holds only statuses (refresh from client or
//! one-way from client against a server that sends no Sync back, as SyncEvolution's
//! server does): nothing needs an answer, so the session ends without a status-only
//! message, and the anchors and acknowledgements are kept.

use syncml_client::mem::MemoryStore;
use syncml_client::{ClientSession, DataStore, SessionConfig, Step, SyncMode};
use syncml_core::model::{Command, SyncMl};

const URL: &str = "http://sync.example/sync";

fn server(msg_id: u32, body: &str) -> SyncMl {
    let xml = format!(
        "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>\
         <SessionID>7</SessionID><MsgID>{msg_id}</MsgID><Target><LocURI>IMEI:1</LocURI></Target>\
         <Source><LocURI>{URL}</LocURI></Source></SyncHdr><SyncBody>{body}<Final/></SyncBody></SyncML>"
    );
    syncml_core::decode(xml.as_bytes()).expect("scripted message decodes")
}

fn status(msg_ref: u32, cmd_ref: &str, cmd: &str, code: u16) -> String {
    format!("<Status><CmdID>1</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>{cmd_ref}</CmdRef><Cmd>{cmd}</Cmd><Data>{code}</Data></Status>")
}

#[test]
fn a_final_package_4_with_only_statuses_ends_the_session_without_a_status_only_message() {
    let mut store = MemoryStore::contacts();
    store.add("BEGIN:VCARD\r\nVERSION:2.1\r\nN:Ann\r\nEND:VCARD\r\n");
    let mut cfg = SessionConfig::new(URL, "IMEI:1", "sub", "secret");
    cfg.now = 1_795_705_315;
    cfg.session_id = "7".into();
    let mut s = ClientSession::new(cfg, &[SyncMode::RefreshFromClient]);
    s.start(&mut [&mut store as &mut dyn DataStore])
        .expect("start");
    let alert =
        "<Alert><CmdID>2</CmdID><Data>203</Data><Item><Target><LocURI>./contacts</LocURI></Target>\
                 <Source><LocURI>contacts</LocURI></Source><Meta><Anchor xmlns='syncml:metinf'>\
                 <Next>42</Next></Anchor></Meta></Item></Alert>";
    let step = s
        .handle(
            server(1, &format!("{}{alert}", status(1, "0", "SyncHdr", 212))),
            &mut [&mut store as &mut dyn DataStore],
        )
        .expect("package 2");
    let Step::Send(p3) = step else {
        panic!("package 3 expected")
    };
    let sync = p3
        .message
        .body
        .commands
        .iter()
        .find_map(|c| match c {
            Command::Sync(s) => Some(s.clone()),
            _ => None,
        })
        .expect("a Sync");
    let replace_id = sync.commands[0].cmd_id().to_string();
    let body = format!(
        "{}{}{}",
        status(2, "0", "SyncHdr", 200),
        status(2, &sync.cmd_id, "Sync", 200),
        status(2, &replace_id, "Replace", 201)
    );
    let step = s
        .handle(server(2, &body), &mut [&mut store as &mut dyn DataStore])
        .expect("package 4");
    let Step::Done(report) = step else {
        panic!("the session must end here, not send a status-only message")
    };
    assert!(report.is_success(), "{report:?}");
    assert_eq!(report.messages_sent, 2);
    assert_eq!(store.pending(), 0, "the sent item was acknowledged");
    assert_eq!(store.state().server_anchor.as_deref(), Some("42"));
}
