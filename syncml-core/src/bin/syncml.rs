//! `syncml`: inspect and convert SyncML messages in either encoding.
//!
//! ```text
//! syncml decode [-o OUT] FILE|-          message as indented XML (input XML or WBXML)
//! syncml encode --wbxml|--xml [-o OUT] FILE|-
//! syncml show FILE|-                     one line per command
//! ```
//!
//! Exit status: 0 success, 1 malformed input or output error, 2 usage error.

use std::io::{Read, Write};
use std::process::ExitCode;
use syncml_core::model::{Command, Data, Meta, SyncMl};
use syncml_core::{xml, Encoding};

const USAGE: &str = "usage:
  syncml decode [-o OUT] FILE|-                 print a message as indented XML (XML or WBXML input)
  syncml encode (--wbxml|--xml) [-o OUT] FILE|- convert a message to WBXML or compact XML
  syncml show FILE|-                            one-line-per-command summary
FILE '-' reads standard input.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(msg)) => {
            eprintln!("syncml: {msg}\n{USAGE}");
            ExitCode::from(2)
        }
        Err(Failure::Input(msg)) => {
            eprintln!("syncml: {msg}");
            ExitCode::from(1)
        }
    }
}

enum Failure {
    Usage(String),
    Input(String),
}

struct Opts {
    input: String,
    output: Option<String>,
    to: Option<Encoding>,
}

fn parse(args: &[String]) -> Result<Opts, Failure> {
    let mut input = None;
    let mut output = None;
    let mut to = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "-o" | "--output" => {
                output = Some(
                    it.next()
                        .ok_or_else(|| Failure::Usage("-o needs a file name".into()))?
                        .clone(),
                )
            }
            "--wbxml" => to = Some(Encoding::Wbxml),
            "--xml" => to = Some(Encoding::Xml),
            "-h" | "--help" => return Err(Failure::Usage("help".into())),
            s if s.starts_with('-') && s != "-" => {
                return Err(Failure::Usage(format!("unknown option {s}")))
            }
            s => {
                if input.replace(s.to_string()).is_some() {
                    return Err(Failure::Usage("more than one input file".into()));
                }
            }
        }
    }
    let input = input.ok_or_else(|| Failure::Usage("missing input file (or -)".into()))?;
    Ok(Opts { input, output, to })
}

fn read_input(path: &str) -> Result<Vec<u8>, Failure> {
    let mut buf = Vec::new();
    let res = if path == "-" {
        std::io::stdin().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::read(path).map(|b| buf = b)
    };
    res.map_err(|e| Failure::Input(format!("{path}: {e}")))?;
    Ok(buf)
}

fn write_output(path: Option<&str>, bytes: &[u8]) -> Result<(), Failure> {
    let res = match path {
        None | Some("-") => {
            let mut out = std::io::stdout().lock();
            out.write_all(bytes).and_then(|_| out.flush())
        }
        Some(p) => std::fs::write(p, bytes),
    };
    res.map_err(|e| Failure::Input(format!("writing output: {e}")))
}

fn run(args: &[String]) -> Result<(), Failure> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(Failure::Usage("missing command".into()));
    };
    match cmd.as_str() {
        "decode" => {
            let o = parse(rest)?;
            let bytes = read_input(&o.input)?;
            let out = syncml_core::transcode(&bytes, Encoding::Xml, &xml::EncodeOptions::pretty())
                .map_err(|e| Failure::Input(format!("{}: {e}", o.input)))?;
            write_output(o.output.as_deref(), &out)
        }
        "encode" => {
            let o = parse(rest)?;
            let to =
                o.to.ok_or_else(|| Failure::Usage("encode needs --wbxml or --xml".into()))?;
            let bytes = read_input(&o.input)?;
            let out = syncml_core::transcode(&bytes, to, &xml::EncodeOptions::default())
                .map_err(|e| Failure::Input(format!("{}: {e}", o.input)))?;
            write_output(o.output.as_deref(), &out)
        }
        "show" => {
            let o = parse(rest)?;
            let bytes = read_input(&o.input)?;
            let encoding = syncml_core::detect(&bytes);
            let msg = syncml_core::decode(&bytes)
                .map_err(|e| Failure::Input(format!("{}: {e}", o.input)))?;
            let mut out = String::new();
            show(&msg, encoding, bytes.len(), &mut out);
            write_output(o.output.as_deref(), out.as_bytes())
        }
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(Failure::Usage(format!("unknown command {other}"))),
    }
}

fn meta_summary(meta: Option<&Meta>) -> String {
    let Some(m) = meta else {
        return String::new();
    };
    let mut parts = Vec::new();
    if let Some(t) = &m.r#type {
        parts.push(format!("type={t}"));
    }
    if let Some(a) = &m.anchor {
        match &a.last {
            Some(l) => parts.push(format!("anchor last={l} next={}", a.next)),
            None => parts.push(format!("anchor next={}", a.next)),
        }
    }
    if let Some(n) = &m.max_msg_size {
        parts.push(format!("MaxMsgSize={n}"));
    }
    if let Some(n) = &m.max_obj_size {
        parts.push(format!("MaxObjSize={n}"));
    }
    if let Some(n) = &m.size {
        parts.push(format!("size={n}"));
    }
    parts.join(" ")
}

/// Which DS package this message most likely is (a heuristic from its commands and
/// direction; SyncML messages do not carry their package number).
fn guess_package(msg: &SyncMl) -> Option<u8> {
    let to_server =
        msg.header.target.loc_uri.contains("://") || !msg.header.source.loc_uri.contains("://");
    let has = |f: &dyn Fn(&Command) -> bool| msg.body.commands.iter().any(f);
    let sync_alert = has(
        &|c| matches!(c, Command::Alert(a) if a.data.is_some_and(|d| (200..=210).contains(&d.0))),
    );
    let sync = has(&|c| matches!(c, Command::Sync(_)));
    let map = has(&|c| matches!(c, Command::Map(_)));
    let status_only = msg
        .body
        .commands
        .iter()
        .all(|c| matches!(c, Command::Status(_)));
    Some(match (to_server, sync_alert, sync, map) {
        (true, _, _, true) => 5,
        (true, _, true, _) => 3,
        (true, true, false, _) => 1,
        (false, true, _, _) => 2,
        (false, false, true, _) => 4,
        (false, false, false, _) if status_only => 6,
        _ => return None,
    })
}

fn show(msg: &SyncMl, encoding: Option<Encoding>, len: usize, out: &mut String) {
    use std::fmt::Write as _;
    let h = &msg.header;
    let enc = match encoding {
        Some(Encoding::Wbxml) => "WBXML",
        _ => "XML",
    };
    let auth = h
        .cred
        .as_ref()
        .and_then(|c| c.meta.as_ref())
        .and_then(|m| m.r#type.clone())
        .unwrap_or_else(|| {
            if h.cred.is_some() {
                "syncml:auth-basic".into()
            } else {
                "none".into()
            }
        });
    let pkg = guess_package(msg)
        .map(|p| format!("package {p}"))
        .unwrap_or_else(|| "package ?".into());
    let _ = writeln!(
        out,
        "{} {enc} {len} bytes, {pkg}, session {} msg {}, {}{} -> {}, auth {auth}{}{}",
        h.ver_proto,
        h.session_id,
        h.msg_id,
        h.source.loc_uri,
        h.source
            .loc_name
            .as_ref()
            .map(|n| format!(" ({n})"))
            .unwrap_or_default(),
        h.target.loc_uri,
        h.resp_uri
            .as_ref()
            .map(|r| format!(", RespURI {r}"))
            .unwrap_or_default(),
        {
            let m = meta_summary(h.meta.as_ref());
            if m.is_empty() {
                m
            } else {
                format!(", {m}")
            }
        }
    );
    for c in &msg.body.commands {
        show_command(c, 1, out);
    }
    if msg.body.is_final {
        let _ = writeln!(out, "  Final");
    }
}

fn item_summary(items: &[syncml_core::model::Item]) -> String {
    let n = items.len();
    let bytes: usize = items
        .iter()
        .map(|i| i.data.as_ref().map_or(0, Data::len))
        .sum();
    let first = items.first().map(|i| {
        let t = i.target.as_ref().map(|t| t.loc_uri.as_str());
        let s = i.source.as_ref().map(|s| s.loc_uri.as_str());
        match (s, t) {
            (Some(s), Some(t)) => format!(" {s} -> {t}"),
            (Some(s), None) => format!(" {s}"),
            (None, Some(t)) => format!(" -> {t}"),
            (None, None) => String::new(),
        }
    });
    let devinf = items.iter().find_map(|i| match &i.data {
        Some(Data::DevInf(d)) => Some(format!(
            " DevInf {} ({} {}, {} datastores)",
            d.ver_dtd,
            d.man.as_deref().unwrap_or("?"),
            d.model.as_deref().unwrap_or("?"),
            d.data_stores.len()
        )),
        _ => None,
    });
    let more = if items.iter().any(|i| i.more_data) {
        " MoreData"
    } else {
        ""
    };
    format!(
        "{n} item{}{} {bytes} bytes{}{more}",
        if n == 1 { "" } else { "s" },
        if n == 1 {
            first.unwrap_or_default()
        } else {
            String::new()
        },
        devinf.unwrap_or_default()
    )
}

fn show_command(c: &Command, depth: usize, out: &mut String) {
    use std::fmt::Write as _;
    let pad = "  ".repeat(depth);
    let name = c.name();
    let id = c.cmd_id();
    match c {
        Command::Status(s) => {
            let refs: Vec<&str> = s
                .target_refs
                .iter()
                .chain(s.source_refs.iter())
                .map(String::as_str)
                .collect();
            let chal = s
                .chal
                .as_ref()
                .and_then(|ch| ch.meta.r#type.clone())
                .map(|t| format!(" Chal {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: for {} msg {} cmd {} {}, {}{chal}",
                s.cmd,
                s.msg_ref,
                s.cmd_ref,
                refs.join(" "),
                s.data
            );
        }
        Command::Alert(a) => {
            let code = a.data.map(|d| d.to_string()).unwrap_or_else(|| "-".into());
            let anchors = a
                .items
                .iter()
                .map(|i| meta_summary(i.meta.as_ref()))
                .collect::<Vec<_>>()
                .join("; ");
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: {code}, {} {anchors}",
                item_summary(&a.items)
            );
        }
        Command::Sync(s) => {
            let t = s.target.as_ref().map(|t| t.loc_uri.as_str()).unwrap_or("?");
            let src = s.source.as_ref().map(|t| t.loc_uri.as_str()).unwrap_or("?");
            let noc = s
                .number_of_changes
                .map(|n| format!(", NumberOfChanges {n}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: {src} -> {t}, {} commands{noc}",
                s.commands.len()
            );
            for c in &s.commands {
                show_command(c, depth + 1, out);
            }
        }
        Command::Atomic(k) | Command::Sequence(k) => {
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: {} commands",
                k.commands.len()
            );
            for c in &k.commands {
                show_command(c, depth + 1, out);
            }
        }
        Command::Map(m) => {
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: {} -> {}, {} map items",
                m.source.loc_uri,
                m.target.loc_uri,
                m.map_items.len()
            );
        }
        other => {
            let _ = writeln!(
                out,
                "{pad}{name:<8} cmd {id}: {}",
                item_summary(other.items())
            );
        }
    }
}
