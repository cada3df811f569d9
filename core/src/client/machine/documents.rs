//! Documents in the machine: opening (the document's keys start from the
//! app ring), closing, and the [`Document`] handle the app edits through.

use super::{ClientMachine, CommandError, DocOptions};
use crate::doc::{DocClientError, DocSync};
use crate::keys::DocKeys;
use crate::ot::Delta;
use crate::protocol::doc;

impl ClientMachine {
    /// Opens document `doc_id` on `private-doc-{doc_id}` (or
    /// `presence-doc-…`), sealing with `options.kid`: the ring's key, or
    /// (when the ring lacks it) the document session's key, asked for with
    /// `NeedKey` once the join has learnt the session's key hint. Its
    /// events arrive as [`Event::Document`]. Opening it again restarts it.
    pub fn open_document(&mut self, doc_id: &str, options: DocOptions) -> Result<(), CommandError> {
        if doc_id.starts_with(doc::GROUP_LOG_PREFIX) {
            let reserved = "document ids starting with `mls-` are reserved for device-keys group logs";
            return Err(CommandError::Document(DocClientError::Malformed(reserved)));
        }
        let channel = doc::channel_for(doc_id, options.presence);
        self.close_document(doc_id);
        let doc = self.start_document(doc_id, &options)?;
        let ring = self.keys.doc_ring_from_app(&options.kid)?;
        self.link.subscribe(&channel)?;
        self.keys.open_doc(doc_id, ring);
        self.docs.insert(doc_id.to_owned(), doc);
        Ok(())
    }

    /// Closes a document and leaves its channel.
    pub fn close_document(&mut self, doc_id: &str) {
        if let Some(doc) = self.docs.remove(doc_id) {
            self.keys.close_doc(doc_id);
            self.link.unsubscribe(doc.channel());
        }
    }

    /// A document sealing with `options.kid`: its keys start with the app
    /// ring's current version of it (see `open_document`), or ask for the
    /// session key.
    pub(super) fn start_document(
        &mut self,
        doc_id: &str,
        options: &DocOptions,
    ) -> Result<Box<DocSync>, CommandError> {
        let rng = self.keys.rng();
        // 128 random bits: nobody can predict (and so take) our op ids.
        let prefix = format!("{:016x}{:016x}", rng.u64()?, rng.u64()?);
        let secret = rng.bytes32()?;
        let doc = DocSync::new(
            doc_id,
            options.presence,
            &options.kid,
            options.key_hint.clone(),
            &prefix,
            secret,
            options.config,
        )?;
        Ok(Box::new(doc))
    }
}

/// An open document ([`ClientMachine::document`]): edits and reads. What
/// an edit produces goes out at the machine's next `poll_*`.
#[derive(Debug)]
pub struct Document<'a> {
    pub(super) doc: &'a mut DocSync,
    /// The document's part of the machine's keys.
    pub(super) keys: DocKeys<'a>,
}

impl Document<'_> {
    /// True once joined and not diverged.
    pub fn is_ready(&self) -> bool {
        self.doc.is_ready()
    }

    /// The last sequence number integrated.
    pub fn seq(&self) -> u64 {
        self.doc.seq()
    }

    /// The document as this user sees it.
    pub fn view(&self) -> Result<Delta, DocClientError> {
        self.doc.view()
    }

    /// The view and its version (to edit at with [`Document::edit_at`]).
    pub fn versioned_view(&self) -> Result<(Delta, u64), DocClientError> {
        self.doc.versioned_view()
    }

    /// The canonical document at [`Document::seq`].
    pub fn canonical(&self) -> Option<&Delta> {
        self.doc.canonical()
    }

    /// True while local edits await acknowledgement.
    pub fn has_pending(&self) -> bool {
        self.doc.has_pending()
    }

    /// A local change to the current view; returns the view's version
    /// after it (see [`DocSync::local_edit`]).
    pub fn edit(&mut self, change: Delta) -> Result<u64, DocClientError> {
        self.doc.local_edit(&mut self.keys, change)
    }

    /// A local change to the view at `version` (see [`DocSync::edit_at`]).
    pub fn edit_at(&mut self, version: u64, change: Delta) -> Result<u64, DocClientError> {
        self.doc.edit_at(&mut self.keys, version, change)
    }

    /// Undoes this user's newest change (it arrives as a `RemoteChange`).
    pub fn undo(&mut self) -> Result<bool, DocClientError> {
        self.doc.undo(&mut self.keys)
    }

    /// Redoes the newest undone change.
    pub fn redo(&mut self) -> Result<bool, DocClientError> {
        self.doc.redo(&mut self.keys)
    }

    /// Resubmits the in-flight op now.
    pub fn resubmit(&mut self) {
        self.doc.resubmit(&mut self.keys);
    }

    /// Shares this user's selection.
    pub fn cursor(&mut self, index: usize, length: usize) -> Result<(), DocClientError> {
        self.doc.cursor(&mut self.keys, index, length)
    }

    /// After `Diverged`: reloads the document from the server.
    pub fn restart(&mut self) {
        // A refusal may have been a passing failure: a restart asks again.
        self.keys.forget_refusals();
        self.doc.restart(&self.keys);
    }
}
