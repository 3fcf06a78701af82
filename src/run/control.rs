//! The control socket, `RUN_DIR/control.sock`: how dashboards in other
//! processes watch and steer a run.
//!
//! The protocol is newline-delimited JSON over a Unix stream socket:
//!
//! - client -> run: one `Command` per line (`{"command":"pause"}`);
//! - run -> client: one `Stamped` event per line, exactly as in `events.jsonl`.
//!   A client first gets every event of `events.jsonl` so far, then each new
//!   event as it happens, so it sees the whole run once, in order, with no gap.
//!
//! A line that is not a command is answered (to that client only) with a
//! `Warning` event naming the problem; the run goes on. Any number of clients
//! may be connected; one that goes away (a dropped SSH connection) is simply
//! forgotten. When the run ends, the socket file is removed and every client
//! reads the end of its stream after the `RunEnded` event.
//!
//! Each client has a queue of at most `CLIENT_QUEUE` lines, filled without
//! ever blocking the engine. A client that falls that far behind (stuck, or
//! on a link slower than the run) is disconnected: its connection is shut
//! down, which also frees its writer thread if it is blocked on a full
//! socket, and a note goes to the run's stderr. Its dashboard reads what was
//! already sent, then the end of the stream, and says so; attaching again
//! replays events.jsonl and follows the run from there.

use crate::error::{Error, Result};
use crate::run::events::{Command, Event, Stamped};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// The socket's file name inside a run directory.
pub const SOCKET_NAME: &str = "control.sock";

/// Lines queued for one client at most (the history counts as one). A run
/// emits a few events per batch; this is minutes of a fast run's events.
pub const CLIENT_QUEUE: usize = 4096;

/// A run's listening end of the control socket.
pub struct ControlServer {
    path: PathBuf,
    hub: Arc<Mutex<Hub>>,
    shutdown: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

/// The connected clients, and the log a newcomer is first sent.
struct Hub {
    events_log: PathBuf,
    clients: Vec<Client>,
    next_id: u64,
}

struct Client {
    id: u64,
    /// Lines for this client's writer thread.
    lines: SyncSender<Arc<str>>,
    /// The connection, to cut it when the client falls too far behind.
    stream: UnixStream,
}

impl Client {
    /// Queue `line` without waiting; false when the client is gone or was
    /// disconnected for falling `CLIENT_QUEUE` lines behind.
    fn offer(&self, line: Arc<str>) -> bool {
        match self.lines.try_send(line) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(_)) => false,
            Err(TrySendError::Full(_)) => {
                // Wakes a writer blocked on the full socket; the client reads
                // the end of its stream after what it already has.
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                eprintln!(
                    "{SOCKET_NAME}: a dashboard fell {CLIENT_QUEUE} events behind and was disconnected; it can attach again"
                );
                false
            }
        }
    }
}

impl ControlServer {
    /// Listen on `RUN_DIR/control.sock`. Commands from clients go to `commands`.
    ///
    /// A socket file that nobody answers on is left over from a killed run and
    /// is replaced. One that answers belongs to a live run: that is refused
    /// (bad input), because two engines writing one run directory would
    /// corrupt it.
    pub fn bind(run_dir: &Path, commands: Sender<Command>) -> Result<ControlServer> {
        let path = run_dir.join(SOCKET_NAME);
        if path.symlink_metadata().is_ok() {
            if UnixStream::connect(&path).is_ok() {
                return Err(Error::input(format!(
                    "{}: a run is already running in this directory (it answers on {SOCKET_NAME})\nfix: watch it with `orchard attach {}`, or wait until it has ended",
                    run_dir.display(),
                    run_dir.display()
                )));
            }
            std::fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
        }
        let listener = UnixListener::bind(&path).map_err(|e| Error::io(&path, e))?;
        let hub = Arc::new(Mutex::new(Hub {
            events_log: run_dir.join("events.jsonl"),
            clients: Vec::new(),
            next_id: 0,
        }));
        let shutdown = Arc::new(AtomicBool::new(false));
        let accept = {
            let hub = hub.clone();
            let shutdown = shutdown.clone();
            std::thread::Builder::new()
                .name("orchard-control".into())
                .spawn(move || accept_loop(listener, hub, shutdown, commands))
                .map_err(|e| Error::Internal(format!("cannot start the control thread: {e}")))?
        };
        Ok(ControlServer {
            path,
            hub,
            shutdown,
            accept: Some(accept),
        })
    }

    /// Write `event` to the log with `write_log`, then send it to every client.
    ///
    /// Both happen under one lock, the same one a newcomer's history is read
    /// under, so a client that connects in between neither misses nor doubles
    /// this event.
    pub fn publish<R>(&self, event: &Stamped, write_log: impl FnOnce() -> R) -> R {
        let mut hub = self.hub.lock().unwrap_or_else(PoisonError::into_inner);
        let written = write_log();
        if let Ok(mut line) = serde_json::to_string(event) {
            line.push('\n');
            let line: Arc<str> = line.into();
            // A client that went away, or fell too far behind, is dropped here.
            hub.clients.retain(|c| c.offer(line.clone()));
        }
        written
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clients
            .len()
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.shutdown.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag; join only if that worked,
        // else it could wait forever (someone removed the file under us).
        if UnixStream::connect(&self.path).is_ok()
            && let Some(accept) = self.accept.take()
        {
            let _ = accept.join();
        }
        let _ = std::fs::remove_file(&self.path);
        // Dropping the senders lets each writer send what is queued (RunEnded
        // included) and then close its connection.
        self.hub
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clients
            .clear();
    }
}

fn accept_loop(
    listener: UnixListener,
    hub: Arc<Mutex<Hub>>,
    shutdown: Arc<AtomicBool>,
    commands: Sender<Command>,
) {
    for stream in listener.incoming() {
        if shutdown.load(Ordering::SeqCst) {
            break;
        }
        // A failed accept (out of descriptors, say) must not end the listening.
        let Ok(stream) = stream else { continue };
        if let Err(e) = add_client(&hub, stream, commands.clone()) {
            eprintln!("control.sock: a client could not be added: {e}");
        }
    }
}

/// Queue the history for a new client and start its two threads.
fn add_client(
    shared: &Arc<Mutex<Hub>>,
    stream: UnixStream,
    commands: Sender<Command>,
) -> Result<()> {
    let io = |e| Error::io(SOCKET_NAME, e);
    let mut hub = shared.lock().unwrap_or_else(PoisonError::into_inner);
    let id = hub.next_id;
    hub.next_id += 1;
    let (lines, queue) = sync_channel::<Arc<str>>(CLIENT_QUEUE);
    // Called under the hub's lock: no event is appended while the history is read.
    let history = match std::fs::read_to_string(&hub.events_log) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&hub.events_log, e)),
    };
    // A run killed mid-line left half an event: the newcomer gets whole lines only.
    let whole = &history[..history.rfind('\n').map_or(0, |i| i + 1)];
    if !whole.is_empty() {
        let _ = lines.send(whole.into());
    }
    let reader = stream.try_clone().map_err(io)?;
    let cutter = stream.try_clone().map_err(io)?;
    let writer = stream;
    std::thread::Builder::new()
        .name("orchard-control-out".into())
        .spawn(move || write_lines(writer, queue))
        .map_err(|e| Error::Internal(e.to_string()))?;
    // The reader answers through the hub, not with a sender of its own: a
    // sender it held would keep the writer (and the connection) open after
    // the run has ended.
    let answers = shared.clone();
    std::thread::Builder::new()
        .name("orchard-control-in".into())
        .spawn(move || read_commands(reader, commands, &answers, id))
        .map_err(|e| Error::Internal(e.to_string()))?;
    hub.clients.push(Client {
        id,
        lines,
        stream: cutter,
    });
    Ok(())
}

/// Send queued lines until the queue closes or the client is gone, then hang up.
fn write_lines(mut stream: UnixStream, queue: Receiver<Arc<str>>) {
    for line in queue {
        if stream.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
    // Also ends this client's reader thread, which is blocked in a read.
    let _ = stream.shutdown(std::net::Shutdown::Both);
}

/// Forward each command line to the engine; answer a bad line with a Warning.
fn read_commands(stream: UnixStream, commands: Sender<Command>, hub: &Mutex<Hub>, id: u64) {
    for line in BufReader::new(stream).lines() {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<Command>(&line) {
            Ok(command) => {
                if commands.send(command).is_err() {
                    break; // the engine has finished
                }
            }
            Err(e) => {
                let warning = Stamped::now(Event::Warning {
                    message: format!("{SOCKET_NAME}: not a command: {line:?} ({e})"),
                });
                if let Ok(mut text) = serde_json::to_string(&warning) {
                    text.push('\n');
                    let hub = hub.lock().unwrap_or_else(PoisonError::into_inner);
                    if let Some(client) = hub.clients.iter().find(|c| c.id == id) {
                        client.offer(text.into());
                    }
                }
            }
        }
    }
}

/// A dashboard's end of a run: its events, and where to send commands.
pub struct Attachment {
    pub events: tokio::sync::mpsc::UnboundedReceiver<Stamped>,
    pub commands: Sender<Command>,
    /// A live run answered on the socket; false: only its history was read.
    pub live: bool,
}

/// Connect to the run in `run_dir`. A live run streams its history and then
/// its new events; a finished or killed one (no socket, or nobody answers)
/// gives its `events.jsonl` and a command channel nobody listens to.
pub fn attach(run_dir: &Path) -> Result<Attachment> {
    let log = run_dir.join("events.jsonl");
    if !run_dir.join("config.toml").is_file() {
        return Err(Error::input(format!(
            "{}: not an orchard run directory (no config.toml)\nfix: pass the directory a run printed when it started",
            run_dir.display()
        )));
    }
    let (event_tx, events) = tokio::sync::mpsc::unbounded_channel();
    let (commands, command_rx) = channel::<Command>();
    match UnixStream::connect(run_dir.join(SOCKET_NAME)) {
        Ok(stream) => {
            let io = |e| Error::io(run_dir.join(SOCKET_NAME), e);
            let reader = stream.try_clone().map_err(io)?;
            std::thread::Builder::new()
                .name("orchard-attach-in".into())
                .spawn(move || {
                    let mut ended = false;
                    for line in BufReader::new(reader).lines() {
                        let Ok(line) = line else { break };
                        if let Some(event) = parse_event_line(&line) {
                            ended |= matches!(event.event, Event::RunEnded { .. });
                            if event_tx.send(event).is_err() {
                                return;
                            }
                        }
                    }
                    if !ended {
                        // Cut off before the run's end: this dashboard fell
                        // too far behind, or the run was killed.
                        let _ = event_tx.send(Stamped::now(Event::Warning {
                            message: format!(
                                "{SOCKET_NAME} closed the connection before the run ended (this dashboard fell behind, or the run was killed); attach again to follow it"
                            ),
                        }));
                    }
                })
                .map_err(|e| Error::Internal(e.to_string()))?;
            std::thread::Builder::new()
                .name("orchard-attach-out".into())
                .spawn(move || send_commands(stream, command_rx))
                .map_err(|e| Error::Internal(e.to_string()))?;
            Ok(Attachment {
                events,
                commands,
                live: true,
            })
        }
        Err(_) => {
            let text = match std::fs::read_to_string(&log) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                Err(e) => return Err(Error::io(&log, e)),
            };
            for event in text.lines().filter_map(parse_event_line) {
                let _ = event_tx.send(event);
            }
            // Dropping both ends tells the dashboard nothing more will come.
            drop(command_rx);
            Ok(Attachment {
                events,
                commands,
                live: false,
            })
        }
    }
}

fn send_commands(mut stream: UnixStream, commands: Receiver<Command>) {
    for command in commands {
        let Ok(mut line) = serde_json::to_string(&command) else {
            continue;
        };
        line.push('\n');
        if stream.write_all(line.as_bytes()).is_err() {
            break;
        }
    }
}

/// One line of `events.jsonl` or of the socket; a damaged line (a run killed
/// mid-write, an event kind from a newer orchard) is skipped, not fatal.
pub fn parse_event_line(line: &str) -> Option<Stamped> {
    let line = line.trim();
    if line.is_empty() {
        return None;
    }
    serde_json::from_str(line).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A run directory with a config and a few logged events.
    fn run_dir_with_events(n: usize) -> (tempfile::TempDir, Vec<Stamped>) {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("config.toml"), "").unwrap();
        let events: Vec<Stamped> = (0..n)
            .map(|i| Stamped {
                time: i as f64,
                event: Event::Paused { step: i },
            })
            .collect();
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        std::fs::write(t.path().join("events.jsonl"), text).unwrap();
        (t, events)
    }

    /// Publish as the engine does: append to events.jsonl, then broadcast.
    fn publish(server: &ControlServer, dir: &Path, event: &Stamped) {
        server.publish(event, || {
            let mut f = std::fs::OpenOptions::new()
                .append(true)
                .open(dir.join("events.jsonl"))
                .unwrap();
            writeln!(f, "{}", serde_json::to_string(event).unwrap()).unwrap();
        });
    }

    fn recv(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Stamped>) -> Option<Stamped> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.try_recv() {
                Ok(e) => return Some(e),
                Err(tokio::sync::mpsc::error::TryRecvError::Disconnected) => return None,
                Err(_) if Instant::now() > deadline => panic!("no event within 30 s"),
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn wait_until(what: &str, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cond() {
            assert!(Instant::now() < deadline, "not within 30 s: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_client_gets_the_history_then_live_events_and_its_commands_arrive() {
        let (t, history) = run_dir_with_events(3);
        let (cmd_tx, cmd_rx) = channel();
        let server = ControlServer::bind(t.path(), cmd_tx).unwrap();
        let mut a = attach(t.path()).unwrap();
        assert!(a.live);
        for want in &history {
            assert_eq!(recv(&mut a.events).as_ref(), Some(want));
        }
        wait_until("the client is registered", || server.client_count() == 1);
        let live = Stamped {
            time: 9.0,
            event: Event::Resumed { step: 9 },
        };
        publish(&server, t.path(), &live);
        assert_eq!(recv(&mut a.events), Some(live));

        a.commands.send(Command::SetTheta { theta: 0.75 }).unwrap();
        a.commands.send(Command::Pause).unwrap();
        let got = cmd_rx.recv_timeout(Duration::from_secs(30)).unwrap();
        assert_eq!(got, Command::SetTheta { theta: 0.75 });
        assert_eq!(
            cmd_rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            Command::Pause
        );

        // The run goes away without a RunEnded (as if killed): the socket
        // file goes, the client is told so and reads the end.
        drop(server);
        assert!(!t.path().join(SOCKET_NAME).exists());
        match recv(&mut a.events).map(|e| e.event) {
            Some(Event::Warning { message }) => {
                assert!(message.contains("attach again"), "{message}")
            }
            other => panic!("expected the cut-off warning, got {other:?}"),
        }
        assert_eq!(recv(&mut a.events), None);
    }

    #[test]
    fn two_clients_see_the_same_events_and_a_vanished_one_is_forgotten() {
        let (t, _) = run_dir_with_events(1);
        let (cmd_tx, _cmd_rx) = channel();
        let server = ControlServer::bind(t.path(), cmd_tx).unwrap();
        let mut first = attach(t.path()).unwrap();
        let second = attach(t.path()).unwrap();
        wait_until("both registered", || server.client_count() == 2);
        drop(second);
        let event = Stamped {
            time: 5.0,
            event: Event::Paused { step: 5 },
        };
        // The vanished client's writer notices on a write; keep publishing
        // until it is dropped. The live client gets every one of them.
        let mut sent = 0;
        while server.client_count() == 2 {
            publish(&server, t.path(), &event);
            sent += 1;
            assert!(sent < 100_000, "a closed client was never dropped");
        }
        assert_eq!(recv(&mut first.events).unwrap().time, 0.0);
        for _ in 0..sent {
            assert_eq!(recv(&mut first.events), Some(event.clone()));
        }
    }

    #[test]
    fn a_client_that_never_reads_is_cut_off_without_slowing_the_run() {
        let (t, _) = run_dir_with_events(0);
        let (cmd_tx, _cmd_rx) = channel();
        let server = ControlServer::bind(t.path(), cmd_tx).unwrap();
        // Connected, never reading: the socket buffer fills, then the queue.
        let stuck = UnixStream::connect(t.path().join(SOCKET_NAME)).unwrap();
        let mut live = attach(t.path()).unwrap();
        wait_until("both registered", || server.client_count() == 2);
        // A reading client, counting what it gets.
        let counted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = counted.clone();
        std::thread::spawn(move || {
            while let Some(e) = live.events.blocking_recv() {
                if matches!(e.event, Event::Warning { ref message } if message.starts_with("xx")) {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        let event = Stamped {
            time: 1.0,
            event: Event::Warning {
                message: "x".repeat(200),
            },
        };
        // Far more than the socket buffer plus the queue can hold: publish
        // never waits for the stuck client (this loop would hang otherwise).
        // The reading client keeps up as with a real run, where batches take
        // far longer than this loop: every 1024 events it catches up.
        let n = 4 * CLIENT_QUEUE;
        for i in 1..=n {
            server.publish(&event, || ());
            if i % 1024 == 0 {
                wait_until("the reading client keeps up", || {
                    counted.load(Ordering::SeqCst) == i
                });
            }
        }
        wait_until("the stuck client is dropped", || server.client_count() == 1);
        // Its connection is closed: it reads what was sent, then the end.
        let mut got = 0;
        for line in BufReader::new(stuck).lines() {
            let Ok(line) = line else { break };
            assert!(parse_event_line(&line).is_some(), "{line}");
            got += 1;
        }
        assert!(got < n, "a dropped client got all {n} events");
        // The reading client got every event and is still served.
        server.publish(&event, || ());
        wait_until("the reading client got every event", || {
            counted.load(Ordering::SeqCst) == n + 1
        });
        assert_eq!(server.client_count(), 1);
    }

    #[test]
    fn a_bad_line_is_answered_with_a_warning_and_the_connection_stays() {
        let (t, _) = run_dir_with_events(0);
        let (cmd_tx, cmd_rx) = channel();
        let _server = ControlServer::bind(t.path(), cmd_tx).unwrap();
        let mut stream = UnixStream::connect(t.path().join(SOCKET_NAME)).unwrap();
        stream
            .write_all(b"{\"command\":\"jump\"}\n{\"command\":\"stop\"}\n")
            .unwrap();
        let mut lines = BufReader::new(stream.try_clone().unwrap()).lines();
        let answer: Stamped = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
        match answer.event {
            Event::Warning { message } => assert!(message.contains("jump"), "{message}"),
            other => panic!("expected a warning, got {other:?}"),
        }
        assert_eq!(
            cmd_rx.recv_timeout(Duration::from_secs(30)).unwrap(),
            Command::Stop
        );
    }

    #[test]
    fn a_stale_socket_is_replaced_and_a_live_one_refused() {
        let (t, _) = run_dir_with_events(0);
        // A socket file nobody listens on, as a killed run leaves it.
        drop(UnixListener::bind(t.path().join(SOCKET_NAME)).unwrap());
        assert!(t.path().join(SOCKET_NAME).exists());
        let (cmd_tx, _rx) = channel();
        let server = ControlServer::bind(t.path(), cmd_tx.clone()).unwrap();
        let err = ControlServer::bind(t.path(), cmd_tx).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("already running"), "{err}");
        drop(server);
    }

    #[test]
    fn attaching_to_a_finished_run_reads_its_history() {
        let (t, history) = run_dir_with_events(2);
        // A stale socket: nobody answers, so the history is all there is.
        drop(UnixListener::bind(t.path().join(SOCKET_NAME)).unwrap());
        let mut a = attach(t.path()).unwrap();
        assert!(!a.live);
        assert_eq!(recv(&mut a.events).as_ref(), Some(&history[0]));
        assert_eq!(recv(&mut a.events).as_ref(), Some(&history[1]));
        assert_eq!(recv(&mut a.events), None);
        assert!(a.commands.send(Command::Pause).is_err());
    }

    #[test]
    fn attaching_to_a_directory_that_is_not_a_run_is_bad_input() {
        let t = tempfile::tempdir().unwrap();
        let err = attach(t.path()).err().unwrap();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("not an orchard run"), "{err}");
    }

    #[test]
    fn damaged_lines_are_skipped() {
        assert_eq!(parse_event_line("{\"time\":1.0,\"event\":\"pau"), None);
        assert_eq!(parse_event_line("   "), None);
        assert!(parse_event_line("{\"time\":1.0,\"event\":\"paused\",\"step\":2}").is_some());
    }
}
