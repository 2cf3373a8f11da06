//! The reference acceptor: QuickFIX C++ (through the `quickfix` crate) with our FIX 4.2
//! dictionary, a file message store, and an application that answers every NewOrderSingle with
//! an acknowledgement ExecutionReport (150=0), every cancel with a cancel confirmation (150=4)
//! and every replace with a replace confirmation (150=5). No matching, no journal: it is the
//! cost of a mainstream FIX engine's session layer alone.
//!
//! Run as a subprocess of the load generator (`loadgen qf-acceptor`), as the appliance is, so
//! both get a process of their own on the same machine.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use quickfix::{
    send_to_target, Acceptor, Application, ApplicationCallback, ConnectionHandler, FieldMap,
    FileMessageStoreFactory, FixSocketServerKind, LogFactory, Message, MsgFromAppError, NullLogger,
    SessionId, SessionSettings,
};

struct Acknowledger {
    exec_id: AtomicU64,
}

fn get(msg: &Message, tag: i32) -> String {
    msg.get_field(tag).unwrap_or_default()
}

impl ApplicationCallback for Acknowledger {
    fn on_msg_from_app(&self, msg: &Message, session: &SessionId) -> Result<(), MsgFromAppError> {
        let msg_type = msg.with_header(|h| h.get_field(35)).unwrap_or_default();
        let (exec_type, status) = match msg_type.as_str() {
            "D" => ("0", "0"),
            "F" => ("4", "4"),
            "G" => ("5", "0"),
            _ => return Ok(()),
        };
        let id = self.exec_id.fetch_add(1, Ordering::Relaxed) + 1;
        let qty = get(msg, 38);
        let cl = get(msg, 11);
        let mut er = Message::new();
        let built = (|| -> Result<(), quickfix::QuickFixError> {
            er.with_header_mut(|h| h.set_field(35, "8"))?;
            er.set_field(37, id)?;
            er.set_field(11, cl.as_str())?;
            if msg_type != "D" {
                er.set_field(41, get(msg, 41))?;
            }
            er.set_field(17, id)?;
            er.set_field(20, "0")?;
            er.set_field(150, exec_type)?;
            er.set_field(39, status)?;
            er.set_field(55, get(msg, 55))?;
            er.set_field(54, get(msg, 54))?;
            if !qty.is_empty() {
                er.set_field(38, qty.as_str())?;
            }
            if msg_type == "F" {
                er.set_field(151, "0")?;
            } else {
                er.set_field(151, qty.as_str())?;
            }
            er.set_field(14, "0")?;
            er.set_field(6, "0")?;
            Ok(())
        })();
        if built.is_ok() {
            let _ = send_to_target(er, session);
        }
        Ok(())
    }
}

/// Writes the acceptor's settings: one session per client CompID.
pub fn settings(dir: &Path, port: u16, dictionary: &Path, clients: &[String]) -> String {
    let mut s = format!(
        "[DEFAULT]\nConnectionType=acceptor\nSocketAcceptPort={port}\nSocketNodelay=Y\n\
FileStorePath={store}\nStartTime=00:00:00\nEndTime=00:00:00\nUseDataDictionary=Y\n\
DataDictionary={dict}\nResetOnLogon=Y\nBeginString=FIX.4.2\nSenderCompID=EXCH\n",
        store = dir.join("qfstore").display(),
        dict = dictionary.display(),
    );
    for c in clients {
        s.push_str(&format!("\n[SESSION]\nTargetCompID={c}\n"));
    }
    s
}

/// Serves until stdin closes. Prints "ready" once listening.
pub fn serve(dir: &Path, port: u16, dictionary: &Path, clients: &[String]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join("acceptor.cfg");
    std::fs::write(&path, settings(dir, port, dictionary, clients))?;
    let settings = SessionSettings::try_from_path(&path)?;
    let store = FileMessageStoreFactory::try_new(&settings)?;
    let log = LogFactory::try_new(&NullLogger)?;
    let ack = Acknowledger {
        exec_id: AtomicU64::new(0),
    };
    let app = Application::try_new(&ack)?;
    let mut acceptor = Acceptor::try_new(
        &settings,
        &app,
        &store,
        &log,
        FixSocketServerKind::SingleThreaded,
    )?;
    acceptor.start()?;
    println!("ready");
    let mut line = String::new();
    while std::io::stdin().read_line(&mut line)? > 0 {
        line.clear();
    }
    acceptor.stop()?;
    Ok(())
}
