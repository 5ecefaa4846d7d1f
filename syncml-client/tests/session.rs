//! The sans-IO client session against scripted server messages: no sockets, no clock.

use syncml_client::mem::MemoryStore;
use syncml_client::{
    AuthScheme, ClientSession, DataStore, SessionConfig, SessionError, Step, SyncMode, SyncState,
};
use syncml_core::model::{Command, Data, SyncMl};
use syncml_core::{auth, StatusCode};

const URL: &str = "http://sync.example/sync";

fn cfg() -> SessionConfig {
    let mut c = SessionConfig::new(URL, "IMEI:1", "sub", "secret");
    c.now = 1_795_705_315;
    c.session_id = "7".into();
    c
}

/// A server message: header, then `body` (XML commands), `Final` if `fin`.
fn server(msg_id: u32, body: &str, fin: bool) -> SyncMl {
    let xml = format!(
        "<SyncML xmlns='SYNCML:SYNCML1.2'><SyncHdr><VerDTD>1.2</VerDTD><VerProto>SyncML/1.2</VerProto>\
         <SessionID>7</SessionID><MsgID>{msg_id}</MsgID><Target><LocURI>IMEI:1</LocURI></Target>\
         <Source><LocURI>{URL}</LocURI></Source><RespURI>{URL}?s=abc</RespURI></SyncHdr><SyncBody>{body}{}</SyncBody></SyncML>",
        if fin { "<Final/>" } else { "" }
    );
    syncml_core::decode(xml.as_bytes()).expect("scripted message decodes")
}

fn hdr_status(msg_ref: u32, code: u16) -> String {
    format!("<Status><CmdID>1</CmdID><MsgRef>{msg_ref}</MsgRef><CmdRef>0</CmdRef><Cmd>SyncHdr</Cmd><TargetRef>{URL}</TargetRef><SourceRef>IMEI:1</SourceRef><Data>{code}</Data></Status>")
}

fn alert(code: u32, last: Option<&str>, next: &str) -> String {
    let last = last
        .map(|l| format!("<Last>{l}</Last>"))
        .unwrap_or_default();
    format!("<Alert><CmdID>5</CmdID><Data>{code}</Data><Item><Target><LocURI>./contacts</LocURI></Target><Source><LocURI>contacts</LocURI></Source><Meta><Anchor xmlns='syncml:metinf'>{last}<Next>{next}</Next></Anchor></Meta></Item></Alert>")
}

fn add(cmd: u32, guid: &str, data: &str) -> String {
    format!("<Add><CmdID>{cmd}</CmdID><Meta><Type xmlns='syncml:metinf'>text/x-vcard</Type></Meta><Item><Source><LocURI>{guid}</LocURI></Source><Data>{data}</Data></Item></Add>")
}

fn sync(cmd: u32, inner: &str) -> String {
    format!("<Sync><CmdID>{cmd}</CmdID><Target><LocURI>./contacts</LocURI></Target><Source><LocURI>contacts</LocURI></Source>{inner}</Sync>")
}

fn sent(step: Step) -> SyncMl {
    match step {
        Step::Send(o) => o.message,
        Step::Done(r) => panic!("expected a message, session ended: {r:?}"),
    }
}

fn statuses(m: &SyncMl) -> Vec<(String, String, u16)> {
    m.body
        .commands
        .iter()
        .filter_map(|c| match c {
            Command::Status(s) => Some((s.cmd.clone(), s.cmd_ref.clone(), s.data.0)),
            _ => None,
        })
        .collect()
}

fn has(m: &SyncMl, name: &str) -> usize {
    m.body.commands.iter().filter(|c| c.name() == name).count()
}

#[test]
fn package_1_carries_devinf_anchors_and_md5_credentials() {
    let mut store = MemoryStore::contacts();
    let mut s = ClientSession::new(cfg(), &[SyncMode::TwoWay]);
    let out = s
        .start(&mut [&mut store as &mut dyn DataStore])
        .expect("start");
    let m = &out.message;
    assert_eq!(out.url, URL);
    assert_eq!(m.header.source.loc_uri, "IMEI:1");
    assert_eq!(m.header.source.loc_name.as_deref(), Some("sub"));
    let cred = m.header.cred.as_ref().expect("cred");
    assert_eq!(
        cred.data.as_text(),
        Some(auth::md5::credential("sub", "secret", b"").as_str()),
        "first contact: empty nonce"
    );
    assert!(m.body.is_final);
    let Command::Put(p) = &m.body.commands[0] else {
        panic!("Put first")
    };
    assert!(matches!(p.items[0].data, Some(Data::DevInf(_))));
    let Command::Alert(a) = &m.body.commands[1] else {
        panic!("Alert")
    };
    assert_eq!(a.data.map(|d| d.0), Some(201), "no anchors yet: slow sync");
    let anchor = a.items[0]
        .meta
        .as_ref()
        .and_then(|m| m.anchor.clone())
        .expect("anchor");
    assert_eq!(
        (anchor.last, anchor.next.as_str()),
        (None, "20261126T150155Z")
    );
}

#[test]
fn basic_auth_over_plain_http_is_refused_before_anything_is_sent() {
    let mut c = cfg();
    c.auth = AuthScheme::Basic;
    let mut store = MemoryStore::contacts();
    let mut s = ClientSession::new(c, &[SyncMode::TwoWay]);
    let e = s
        .start(&mut [&mut store as &mut dyn DataStore])
        .unwrap_err();
    assert_eq!(e, SessionError::BasicWithoutTls);
}

#[test]
fn a_401_challenge_is_answered_once_with_the_new_nonce() {
    let mut store = MemoryStore::contacts();
    let stores = &mut [&mut store as &mut dyn DataStore];
    let mut s = ClientSession::new(cfg(), &[SyncMode::TwoWay]);
    s.start(stores).expect("start");
    let chal = "<Chal><Meta><Format xmlns='syncml:metinf'>b64</Format><Type xmlns='syncml:metinf'>syncml:auth-md5</Type><NextNonce xmlns='syncml:metinf'>Tm9uY2U=</NextNonce></Meta></Chal>";
    let refused = hdr_status(1, 401).replace("<Data>401", &format!("{chal}<Data>401"));
    let retry = sent(s.handle(server(1, &refused, true), stores).expect("retry"));
    assert_eq!(
        retry.header.msg_id, "1",
        "package 1 again, as SyncEvolution does"
    );
    assert_eq!(retry.header.session_id, "8", "in a new session");
    assert_eq!(
        retry.header.cred.as_ref().and_then(|c| c.data.as_text()),
        Some(auth::md5::credential("sub", "secret", b"Nonce").as_str())
    );
    assert_eq!(s.next_nonce(), Some("Tm9uY2U="));
    let e = s.handle(server(1, &refused, true), stores).unwrap_err();
    assert_eq!(e, SessionError::AuthFailed(StatusCode(401)));
}

#[test]
fn an_unknown_server_anchor_gets_508_and_a_slow_sync() {
    let mut store = MemoryStore::contacts();
    store.add("A");
    store
        .set_sync_state(&SyncState {
            last_anchor: Some("L1".into()),
            server_anchor: Some("S1".into()),
            pending_maps: vec![],
            ..SyncState::default()
        })
        .unwrap();
    store
        .acknowledge(
            &store
                .clone()
                .changes()
                .unwrap()
                .iter()
                .map(|c| c.id())
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let stores = &mut [&mut store as &mut dyn DataStore];
    let mut s = ClientSession::new(cfg(), &[SyncMode::TwoWay]);
    let p1 = s.start(stores).expect("start");
    let Command::Alert(a) = &p1.message.body.commands[1] else {
        panic!()
    };
    assert_eq!(a.data.map(|d| d.0), Some(200));
    let body = format!("{}{}", hdr_status(1, 212), alert(200, Some("S0"), "S2"));
    let p3 = sent(s.handle(server(1, &body, true), stores).expect("pkg3"));
    assert_eq!(p3.header.target.loc_uri, format!("{URL}?s=abc"), "RespURI");
    let st = statuses(&p3);
    assert!(st.contains(&("Alert".into(), "5".into(), 508)), "{st:?}");
    let Some(Command::Sync(sy)) = p3.body.commands.iter().find(|c| c.name() == "Sync") else {
        panic!("Sync")
    };
    assert_eq!(sy.commands.len(), 1, "slow sync sends every item");
    assert_eq!(sy.commands[0].name(), "Replace");
    let r = s.report();
    assert_eq!(r.stores[0].mode, Some(SyncMode::Slow));
}

#[test]
fn server_packages_over_several_messages_get_alert_222_and_maps_follow() {
    let mut store = MemoryStore::contacts();
    let stores = &mut [&mut store as &mut dyn DataStore];
    let mut s = ClientSession::new(cfg(), &[SyncMode::TwoWay]);
    s.start(stores).expect("start");
    let get = "<Get><CmdID>6</CmdID><Meta><Type xmlns='syncml:metinf'>application/vnd.syncml-devinf+xml</Type></Meta><Item><Target><LocURI>./devinf12</LocURI></Target></Item></Get>";
    let body = format!("{}{}{get}", hdr_status(1, 212), alert(201, None, "S1"));
    let p3 = sent(s.handle(server(1, &body, true), stores).expect("pkg3"));
    assert_eq!(has(&p3, "Results"), 1, "our DevInf for the server's Get");
    assert!(p3.header.cred.is_none(), "no credentials after 212");
    // Package 4 in two messages.
    let m1 = format!("{}{}", hdr_status(2, 200), sync(7, &add(8, "g1", "X")));
    let r1 = sent(s.handle(server(2, &m1, false), stores).expect("222"));
    assert!(!r1.body.is_final);
    let Some(Command::Alert(a)) = r1.body.commands.iter().find(|c| c.name() == "Alert") else {
        panic!("Alert 222")
    };
    assert_eq!(a.data.map(|d| d.0), Some(222));
    assert!(statuses(&r1).contains(&("Add".into(), "8".into(), 201)));
    assert_eq!(has(&r1, "Map"), 0, "maps wait for the end of package 4");
    let m2 = format!("{}{}", hdr_status(3, 200), sync(4, &add(5, "g2", "Y")));
    let p5 = sent(s.handle(server(3, &m2, true), stores).expect("pkg5"));
    assert!(p5.body.is_final);
    let Some(Command::Map(map)) = p5.body.commands.iter().find(|c| c.name() == "Map") else {
        panic!("Map")
    };
    let guids: Vec<&str> = map
        .map_items
        .iter()
        .map(|m| m.target.loc_uri.as_str())
        .collect();
    assert_eq!(guids, ["g1", "g2"]);
    let map_id = map.cmd_id.clone();
    let done = format!(
        "{}<Status><CmdID>2</CmdID><MsgRef>{}</MsgRef><CmdRef>{map_id}</CmdRef><Cmd>Map</Cmd><Data>200</Data></Status>",
        hdr_status(p5.header.msg_id.parse().unwrap(), 200),
        p5.header.msg_id
    );
    let Step::Done(r) = s.handle(server(4, &done, true), stores).expect("done") else {
        panic!("done")
    };
    assert!(r.is_success());
    assert_eq!(r.stores[0].maps_acknowledged, 2);
    drop(s);
    assert_eq!(store.contents(), vec!["X".to_string(), "Y".to_string()]);
    assert_eq!(store.state().server_anchor.as_deref(), Some("S1"));
    assert!(store.state().pending_maps.is_empty());
}

#[test]
fn chunked_items_are_reassembled_and_noresp_gets_no_status() {
    let mut store = MemoryStore::contacts();
    let stores = &mut [&mut store as &mut dyn DataStore];
    let mut s = ClientSession::new(cfg(), &[SyncMode::RefreshFromServer]);
    s.start(stores).expect("start");
    let body = format!("{}{}", hdr_status(1, 212), alert(205, None, "S1"));
    sent(s.handle(server(1, &body, true), stores).expect("pkg3"));
    let chunk1 = "<Add><CmdID>8</CmdID><Meta><Type xmlns='syncml:metinf'>text/plain</Type></Meta><Item><Source><LocURI>big</LocURI></Source><Meta><Size xmlns='syncml:metinf'>6</Size></Meta><Data>abc</Data><MoreData/></Item></Add>";
    let m1 = format!("{}{}", hdr_status(2, 200), sync(7, chunk1));
    let r1 = sent(s.handle(server(2, &m1, false), stores).expect("chunk 1"));
    assert!(statuses(&r1).contains(&("Add".into(), "8".into(), 213)));
    let chunk2 = "<Add><CmdID>5</CmdID><Item><Source><LocURI>big</LocURI></Source><Data>def</Data></Item></Add>";
    let quiet = "<Add><CmdID>6</CmdID><NoResp/><Item><Source><LocURI>q</LocURI></Source><Data>Q</Data></Item></Add>";
    let m2 = format!(
        "{}{}",
        hdr_status(3, 200),
        sync(4, &format!("{chunk2}{quiet}"))
    );
    let p5 = sent(s.handle(server(3, &m2, true), stores).expect("chunk 2"));
    let st = statuses(&p5);
    assert!(st.contains(&("Add".into(), "5".into(), 201)), "{st:?}");
    assert!(!st.iter().any(|(_, r, _)| r == "6"), "NoResp: no status");
    drop(s);
    let mut c = store.contents();
    c.sort();
    assert_eq!(c, ["Q".to_string(), "abcdef".to_string()]);
}
