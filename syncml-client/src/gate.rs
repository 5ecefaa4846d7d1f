//! The gates a sync passes before any byte leaves the handset (FIG. 9-13), and the
//! registration flows that set them up (FIG. 10-A, 11-A; the PIN and password steps of
//! FIG. 8, without its server registration).
//!
//! A gate that says no returns a [`GateRefusal`]; the engine then sends nothing and
//! tells the user why ([`Notice::Refused`]).

use tracing::info;

use crate::error::GateRefusal;
use crate::handset::{Notice, PinResult, Sim, Terminal, Ui};

/// Which gates apply before a sync (para. 0057: "to what extent the security is
/// required"). The checks run in this order: PIN, terminal password, subscriber match,
/// terminal listed on the SIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GatePolicy {
    /// Ask the PIN and collate it on the SIM every time (FIG. 9 S11-S12).
    pub pin: bool,
    /// Ask the terminal password and collate it in the terminal every time (FIG. 9
    /// S13-S14, FIG. 12 S43-S44). The entered password is also the secret behind the
    /// SyncML credentials.
    pub terminal_password: bool,
    /// The SIM's subscriber ID must equal the one registered in the terminal (FIG. 10-B
    /// S31-S32, FIG. 12 S41-S42).
    pub subscriber_match: bool,
    /// The terminal's ID must be listed on the SIM (FIG. 11-B S31a-S32a).
    pub terminal_listed: bool,
}

impl GatePolicy {
    /// FIG. 9: PIN and terminal password every time.
    pub const FIG9: GatePolicy = GatePolicy {
        pin: true,
        terminal_password: true,
        subscriber_match: false,
        terminal_listed: false,
    };
    /// FIG. 10-B: the SIM's subscriber ID matches the terminal's registration.
    pub const FIG10B: GatePolicy = GatePolicy {
        pin: false,
        terminal_password: false,
        subscriber_match: true,
        terminal_listed: false,
    };
    /// FIG. 11-B: the terminal ID is registered on the SIM.
    pub const FIG11B: GatePolicy = GatePolicy {
        pin: false,
        terminal_password: false,
        subscriber_match: false,
        terminal_listed: true,
    };
    /// FIG. 12: subscriber ID match plus terminal password.
    pub const FIG12: GatePolicy = GatePolicy {
        pin: false,
        terminal_password: true,
        subscriber_match: true,
        terminal_listed: false,
    };
    /// FIG. 13: no local gate; the server decides from the credentials.
    pub const FIG13: GatePolicy = GatePolicy {
        pin: false,
        terminal_password: false,
        subscriber_match: false,
        terminal_listed: false,
    };
    /// Every gate.
    pub const ALL: GatePolicy = GatePolicy {
        pin: true,
        terminal_password: true,
        subscriber_match: true,
        terminal_listed: true,
    };
}

/// What passing the gates established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatePass {
    /// The SIM's subscriber ID (the user of the credentials).
    pub subscriber_id: String,
    /// The terminal ID.
    pub terminal_id: String,
    /// The terminal password the user entered, if the policy asked for it.
    pub password: Option<String>,
    /// The PIN the user entered and the SIM accepted, if the policy asked for it.
    pub pin: Option<String>,
}

/// How many times a wrong PIN may be retyped within one gate check before it refuses.
const PIN_ATTEMPTS: usize = 3;

/// Asks the PIN and collates it (FIG. 8 S1-S2, FIG. 9 S11-S12); returns the accepted PIN.
pub(crate) fn pin_gate(sim: &mut dyn Sim, ui: &mut dyn Ui) -> Result<String, GateRefusal> {
    let mut tries_left = None;
    let mut last = GateRefusal::PinCancelled;
    for _ in 0..PIN_ATTEMPTS {
        let Some(pin) = ui.ask_pin(tries_left) else {
            return Err(GateRefusal::PinCancelled);
        };
        match sim.collate_pin(&pin) {
            PinResult::Ok => return Ok(pin),
            PinResult::Blocked => return Err(GateRefusal::PinBlocked),
            PinResult::Wrong { tries_left: t } => {
                tries_left = Some(t);
                last = GateRefusal::PinWrong { tries_left: t };
            }
        }
    }
    Err(last)
}

/// Asks the terminal password and collates it (FIG. 9 S13-S14).
fn password_gate(terminal: &dyn Terminal, ui: &mut dyn Ui) -> Result<String, GateRefusal> {
    let Some(pw) = ui.ask_terminal_password() else {
        return Err(GateRefusal::PasswordCancelled);
    };
    if terminal.collate_password(&pw) {
        Ok(pw)
    } else {
        Err(GateRefusal::PasswordWrong)
    }
}

/// Runs the gates of `policy`. Touches nothing outside the handset.
pub fn check(
    policy: &GatePolicy,
    sim: Option<&mut dyn Sim>,
    terminal: &dyn Terminal,
    ui: &mut dyn Ui,
) -> Result<GatePass, GateRefusal> {
    let result = check_inner(policy, sim, terminal, ui);
    if let Err(r) = &result {
        info!(refusal = %r, "sync refused by a gate");
        ui.notify(&Notice::Refused(r.clone()));
    }
    result
}

fn check_inner(
    policy: &GatePolicy,
    sim: Option<&mut dyn Sim>,
    terminal: &dyn Terminal,
    ui: &mut dyn Ui,
) -> Result<GatePass, GateRefusal> {
    let Some(sim) = sim else {
        return Err(GateRefusal::NoSim);
    };
    let pin = if policy.pin {
        Some(pin_gate(sim, ui)?)
    } else {
        None
    };
    let password = if policy.terminal_password {
        Some(password_gate(terminal, ui)?)
    } else {
        None
    };
    let subscriber_id = sim.subscriber_id();
    let terminal_id = terminal.terminal_id();
    if policy.subscriber_match {
        match terminal.registered_subscriber_id() {
            None => return Err(GateRefusal::SubscriberNotRegistered),
            Some(r) if r != subscriber_id => return Err(GateRefusal::SubscriberMismatch),
            Some(_) => {}
        }
    }
    if policy.terminal_listed && !sim.registered_terminal_ids().contains(&terminal_id) {
        return Err(GateRefusal::TerminalNotListed);
    }
    Ok(GatePass {
        subscriber_id,
        terminal_id,
        password,
        pin,
    })
}

/// FIG. 10-A: after the PIN (S21-S22) and the terminal password (S23-S24), reads the
/// subscriber ID from the SIM (S25) and registers it in the terminal (S26).
pub fn register_subscriber_in_terminal(
    sim: &mut dyn Sim,
    terminal: &mut dyn Terminal,
    ui: &mut dyn Ui,
) -> Result<String, GateRefusal> {
    let r = pin_gate(sim, ui).and_then(|_| password_gate(terminal, ui));
    if let Err(e) = r {
        ui.notify(&Notice::Refused(e.clone()));
        return Err(e);
    }
    let id = sim.subscriber_id();
    terminal.register_subscriber_id(&id);
    Ok(id)
}

/// FIG. 11-A: after the PIN and the terminal password, reads the terminal ID (S25a) and
/// registers it on the SIM (S26a).
pub fn register_terminal_on_sim(
    sim: &mut dyn Sim,
    terminal: &mut dyn Terminal,
    ui: &mut dyn Ui,
) -> Result<String, GateRefusal> {
    let r = pin_gate(sim, ui).and_then(|_| password_gate(terminal, ui));
    if let Err(e) = r {
        ui.notify(&Notice::Refused(e.clone()));
        return Err(e);
    }
    let id = terminal.terminal_id();
    sim.register_terminal_id(&id);
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mem::{MemorySim, MemoryTerminal, ScriptedUi};

    #[test]
    fn fig9_asks_pin_then_password() {
        let mut sim = MemorySim::new("sub", "1234");
        let t = MemoryTerminal::new("IMEI:1", "pw");
        let mut ui = ScriptedUi::answering("1234", "pw");
        let pass = check(&GatePolicy::FIG9, Some(&mut sim), &t, &mut ui).unwrap();
        assert_eq!(ui.asked, ["pin", "password"]);
        assert_eq!(pass.password.as_deref(), Some("pw"));
        assert_eq!(pass.subscriber_id, "sub");
    }

    #[test]
    fn a_wrong_pin_stops_before_the_password() {
        let mut sim = MemorySim::new("sub", "1234");
        let t = MemoryTerminal::new("IMEI:1", "pw");
        let mut ui = ScriptedUi::answering("9999", "pw");
        let e = check(&GatePolicy::FIG9, Some(&mut sim), &t, &mut ui).unwrap_err();
        assert_eq!(e, GateRefusal::PinBlocked);
        assert!(!ui.asked.contains(&"password"));
        assert_eq!(ui.notices, [Notice::Refused(GateRefusal::PinBlocked)]);
    }

    #[test]
    fn fig10b_and_fig11b_compare_registrations() {
        let mut sim = MemorySim::new("sub", "1234");
        let mut t = MemoryTerminal::new("IMEI:1", "pw");
        let mut ui = ScriptedUi::answering("1234", "pw");
        assert_eq!(
            check(&GatePolicy::FIG10B, Some(&mut sim), &t, &mut ui),
            Err(GateRefusal::SubscriberNotRegistered)
        );
        t.register_subscriber_id("other");
        assert_eq!(
            check(&GatePolicy::FIG10B, Some(&mut sim), &t, &mut ui),
            Err(GateRefusal::SubscriberMismatch)
        );
        register_subscriber_in_terminal(&mut sim, &mut t, &mut ui).unwrap();
        assert!(check(&GatePolicy::FIG10B, Some(&mut sim), &t, &mut ui).is_ok());
        assert_eq!(
            check(&GatePolicy::FIG11B, Some(&mut sim), &t, &mut ui),
            Err(GateRefusal::TerminalNotListed)
        );
        register_terminal_on_sim(&mut sim, &mut t, &mut ui).unwrap();
        assert!(check(&GatePolicy::ALL, Some(&mut sim), &t, &mut ui).is_ok());
        assert_eq!(
            check(&GatePolicy::FIG13, None, &t, &mut ui),
            Err(GateRefusal::NoSim)
        );
    }
}
