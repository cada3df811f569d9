//! Collaborative documents on a [`SealcastClient`]: Quill deltas as JSON,
//! events through the client's listener (`on_document`).

use sealcast_core::client::{DocOptions, Document};
use sealcast_core::doc::{DocClientError, DocConfig};
use sealcast_core::ot::Delta;

use crate::SealcastError;
use crate::client::SealcastClient;
use crate::document_event::json;

/// A document view and its version.
#[derive(uniffi::Record, Debug, Clone, PartialEq)]
pub struct VersionedView {
    /// The document as this user sees it (Quill delta JSON).
    pub view_json: String,
    /// Its version (for `edit_document_at`).
    pub version: u64,
}

/// How to open a document.
#[derive(uniffi::Record)]
pub struct DocumentOptions {
    /// Channel `presence-doc-…` (with a roster and user ids on cursors)
    /// instead of `private-doc-…`.
    pub presence: bool,
    /// Key id to seal with (asked from the key provider with the document
    /// id and `key_hint` when the client lacks it).
    pub kid: String,
    /// The document session's key hint, stored with snapshots (none: a new
    /// session).
    pub key_hint: Option<String>,
    /// Upload a snapshot every this many ops (0: 500).
    pub snapshot_every: u64,
    /// Compare digests every this many ops (0: 100).
    pub digest_every: u64,
}

fn delta(json: &str) -> Result<Delta, SealcastError> {
    Ok(Delta::from_json_str(json)?)
}

impl SealcastClient {
    /// Runs `f` on open document `doc_id`.
    fn with_document<T>(
        &self,
        doc_id: &str,
        f: impl FnOnce(Document<'_>) -> Result<T, DocClientError>,
    ) -> Result<T, SealcastError> {
        self.client.with_machine(|m| Ok(f(m.document(doc_id)?)?))
    }
}

#[uniffi::export]
impl SealcastClient {
    /// Opens document `doc_id` with `options`; its events go to the
    /// client listener's `on_document`.
    pub fn open_document(&self, doc_id: String, options: DocumentOptions) -> Result<(), SealcastError> {
        let defaults = DocConfig::default();
        let or_default = |value: u64, default: u64| if value == 0 { default } else { value };
        let config = DocConfig {
            snapshot_every: or_default(options.snapshot_every, defaults.snapshot_every),
            digest_every: or_default(options.digest_every, defaults.digest_every),
            ..defaults
        };
        let options =
            DocOptions { presence: options.presence, kid: options.kid, key_hint: options.key_hint, config };
        Ok(self.client.with_machine(|m| m.open_document(&doc_id, options))?)
    }

    /// A local change (Quill delta JSON against the SDK's current view);
    /// returns the view's version after it.
    pub fn edit_document(&self, doc_id: String, delta_json: String) -> Result<u64, SealcastError> {
        let change = delta(&delta_json)?;
        self.with_document(&doc_id, |mut doc| doc.edit(change))
    }

    /// A local change against the view at `version` (of the last `Ready`
    /// or `RemoteChange` the editor applied, or of `document_versioned_view`);
    /// returns the version the editor is at after its own change.
    pub fn edit_document_at(
        &self,
        doc_id: String,
        version: u64,
        delta_json: String,
    ) -> Result<u64, SealcastError> {
        let change = delta(&delta_json)?;
        self.with_document(&doc_id, |mut doc| doc.edit_at(version, change))
    }

    /// Undoes this user's newest change; the change for the editor arrives
    /// as a `RemoteChange`. False when there is nothing to undo.
    pub fn undo_document(&self, doc_id: String) -> Result<bool, SealcastError> {
        self.with_document(&doc_id, |mut doc| doc.undo())
    }

    /// Redoes the newest undone change, like `undo_document`.
    pub fn redo_document(&self, doc_id: String) -> Result<bool, SealcastError> {
        self.with_document(&doc_id, |mut doc| doc.redo())
    }

    /// Resubmits the in-flight op now (refused ops are resubmitted
    /// automatically after a wait; this skips it).
    pub fn resubmit_document(&self, doc_id: String) -> Result<(), SealcastError> {
        self.with_document(&doc_id, |mut doc| {
            doc.resubmit();
            Ok(())
        })
    }

    /// Shares this user's selection.
    pub fn document_cursor(&self, doc_id: String, index: u64, length: u64) -> Result<(), SealcastError> {
        let index = usize::try_from(index).map_err(SealcastError::invalid)?;
        let length = usize::try_from(length).map_err(SealcastError::invalid)?;
        self.with_document(&doc_id, |mut doc| doc.cursor(index, length))
    }

    /// The document as this user sees it (Quill delta JSON).
    pub fn document_view(&self, doc_id: String) -> Result<String, SealcastError> {
        self.with_document(&doc_id, |doc| doc.view()).map(|view| json(&view))
    }

    /// The document as this user sees it, with its version (to edit at).
    pub fn document_versioned_view(&self, doc_id: String) -> Result<VersionedView, SealcastError> {
        let (view, version) = self.with_document(&doc_id, |doc| doc.versioned_view())?;
        Ok(VersionedView { view_json: json(&view), version })
    }

    /// After `Diverged`: reloads the document from the server.
    pub fn restart_document(&self, doc_id: String) -> Result<(), SealcastError> {
        self.with_document(&doc_id, |mut doc| {
            doc.restart();
            Ok(())
        })
    }

    /// Closes the document and leaves its channel.
    pub fn close_document(&self, doc_id: String) {
        self.client.with_machine(|m| m.close_document(&doc_id));
    }
}
