//! The editor contract of sealcast documents, runnable without a server:
//! two users edit one encrypted document through `DocClient`s connected to a
//! toy in-memory sequencer, and each user's *editor* (standing in for Quill)
//! applies the SDK's changes late, as a real editor on an event loop does.
//!
//! The contract an editor binding follows (docs/ot.md, "Edits against the
//! version the editor shows"):
//! - on `Ready { view, version }`: replace the content, remember `version`;
//! - on `RemoteChange { change, base, version }`: apply it only when the
//!   editor is at `base` (then it is at `version`), ignore it otherwise;
//! - on a local change (Quill's `text-change` with source `user`): call
//!   `edit_at(version, change)` and remember the version it returns.
//!
//! ```sh
//! cargo run -p sealcast-examples --example doc_editor
//! ```
//!
//! It replays issue 11's case: the document is "abc"; Bob inserts "X" at 0,
//! which reaches Ann's SDK but not yet her editor, and Ann types "Y" after
//! "abc". Both editors end with "XabcY".

use std::collections::VecDeque;
use std::time::Instant;

use sealcast_core::crypto::{Key, KeyRing};
use sealcast_core::doc::{DocClient, DocClientEvent, DocConfig};
use sealcast_core::ot::Delta;
use sealcast_core::protocol::ClientFrame;
use sealcast_core::protocol::doc::{Ack, DocReply, DocRequest, JoinState, SequencedOp};

/// What an editor shows, and the version of it.
struct Editor {
    content: Delta,
    version: u64,
    /// Events delivered but not applied yet (the editor is busy).
    pending: VecDeque<DocClientEvent>,
}

impl Editor {
    fn new() -> Editor {
        Editor { content: Delta::new(), version: 0, pending: VecDeque::new() }
    }

    /// Applies every delivered event, by the contract above.
    fn catch_up(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            match event {
                DocClientEvent::Ready { view, version, .. } => {
                    self.content = view;
                    self.version = version;
                }
                DocClientEvent::RemoteChange { change, base, version } if base == self.version => {
                    self.content =
                        self.content.apply(&change).expect("a change fits the version it is based on");
                    self.version = version;
                }
                _ => {}
            }
        }
    }

    /// The user types `change` into what the editor shows.
    fn type_change(&mut self, doc: &mut DocClient, change: Delta) {
        self.content = self.content.apply(&change).expect("the user edits what is shown");
        self.version = doc.edit_at(self.version, change).expect("the SDK accepts the edit");
    }

    fn text(&self) -> String {
        self.content.to_json().to_string()
    }
}

/// A blind sequencer in memory: numbers ops, acks the author, relays to
/// the others (the real one is `sealcast serve`).
#[derive(Default)]
struct ToySequencer {
    log: Vec<SequencedOp>,
    /// The session key hint: the first claim on the new document.
    key_hint: Option<String>,
}

impl ToySequencer {
    /// Handles one request from client `from`; returns `(to, reply)` pairs.
    fn handle(&mut self, from: usize, request: DocRequest, clients: usize) -> Vec<(usize, DocReply)> {
        match request {
            DocRequest::Join(join) => {
                if self.key_hint.is_none() && self.log.is_empty() {
                    self.key_hint = join.key_hint;
                }
                let state = JoinState {
                    head: self.log.len() as u64,
                    snapshot: None,
                    snapshots: Vec::new(),
                    ops: self.log.clone(),
                    op_seq: None,
                    key_hint: self.key_hint.clone(),
                };
                vec![(from, DocReply::State(state))]
            }
            DocRequest::Submit(submit) => {
                let seq = self.log.len() as u64 + 1;
                let op = SequencedOp {
                    seq,
                    base: submit.base,
                    op_id: submit.op_id.clone(),
                    payload: submit.payload,
                    user_id: None,
                };
                self.log.push(op.clone());
                let ack = Ack { op_id: submit.op_id, seq, duplicate: false };
                (0..clients)
                    .map(|to| {
                        let reply =
                            if to == from { DocReply::Ack(ack.clone()) } else { DocReply::Op(op.clone()) };
                        (to, reply)
                    })
                    .collect()
            }
            _ => Vec::new(), // digests, snapshots: not needed here
        }
    }
}

/// Moves messages between the clients and the sequencer until quiet; the
/// editors receive events but do not apply them (that is up to `main`).
fn pump(docs: &mut [DocClient], editors: &mut [Editor], sequencer: &mut ToySequencer) {
    loop {
        let mut moved = false;
        for from in 0..docs.len() {
            while let Some(message) = docs[from].poll_transmit() {
                moved = true;
                let frame = ClientFrame::parse(message.encode(docs[from].channel()).as_bytes());
                let Ok(request) = frame.map_err(|_| ()).and_then(|f| DocRequest::parse(&f).map_err(|_| ()))
                else {
                    continue; // cursors: not needed here
                };
                for (to, reply) in sequencer.handle(from, request, docs.len()) {
                    let reply = reply.message();
                    docs[to]
                        .handle_event(reply.event, &reply.data, None, Instant::now())
                        .expect("well-formed");
                }
            }
        }
        for (doc, editor) in docs.iter_mut().zip(editors.iter_mut()) {
            editor.pending.extend(std::iter::from_fn(|| doc.poll_event()));
        }
        if !moved {
            return;
        }
    }
}

fn main() {
    let ring = || KeyRing::single("doc", 1, Key::from_bytes(&[7; 32])).expect("a valid key");
    // This toy driver has no clock: it never calls `handle_timeout`, so it
    // turns pacing off (a real driver calls `handle_timeout` when
    // `poll_timeout` is due; a paced edit waits for it: docs/ot.md).
    let config = DocConfig { submit_interval: std::time::Duration::ZERO, ..DocConfig::default() };
    let new_doc = |user| DocClient::new("notes", false, ring(), "doc", None, user, config);
    let mut docs = vec![new_doc("ann").expect("a client"), new_doc("bob").expect("a client")];
    let mut editors = vec![Editor::new(), Editor::new()];
    let mut sequencer = ToySequencer::default();
    for doc in &mut docs {
        doc.join();
    }
    pump(&mut docs, &mut editors, &mut sequencer);
    editors.iter_mut().for_each(Editor::catch_up);

    let mut abc = Delta::new();
    abc.insert_text("abc", None);
    editors[0].type_change(&mut docs[0], abc);
    pump(&mut docs, &mut editors, &mut sequencer);
    editors.iter_mut().for_each(Editor::catch_up);
    println!("both editors: ann {} / bob {}", editors[0].text(), editors[1].text());

    // Bob inserts "X" at 0; it reaches Ann's SDK, not yet her editor.
    let mut x = Delta::new();
    x.insert_text("X", None);
    editors[1].type_change(&mut docs[1], x);
    pump(&mut docs, &mut editors, &mut sequencer);
    println!(
        "ann's SDK holds {}, her editor still shows {}",
        docs[0].view().expect("joined").to_json(),
        editors[0].text()
    );

    // Ann types "Y" after "abc", in what her editor shows.
    let mut y = Delta::new();
    y.retain(3, None).insert_text("Y", None);
    editors[0].type_change(&mut docs[0], y);
    pump(&mut docs, &mut editors, &mut sequencer);
    editors.iter_mut().for_each(Editor::catch_up);

    let (ann, bob) = (editors[0].text(), editors[1].text());
    println!("after catching up: ann {ann} / bob {bob}");
    assert_eq!(ann, bob, "the editors must agree");
    assert_eq!(docs[0].view().expect("joined"), docs[1].view().expect("joined"));
    assert_eq!(editors[0].content, docs[0].view().expect("joined"), "an editor shows its document");
    println!("editors agree: {ann}");
}
