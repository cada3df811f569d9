//! [`ViewVersions`]: which state of the document the app's editor shows,
//! so an edit made against an older state still lands where the user typed.
//!
//! The SDK's view runs ahead of the editor: changes it emitted may still be
//! queued for the app (on a delivery thread, in an event loop) when the user
//! types. Every state of the view the app can reach gets a *version*; every
//! change for the editor carries the version it applies to (`base`) and
//! the one it produces. The app applies a change only when its editor is
//! at that change's `base` and edits "at" the version it shows.
//!
//! An edit at an older version `w` is transformed through the changes from
//! `w` to the SDK's view (which win insert ties: they were sequenced
//! first), and those changes are transformed past the edit into one
//! *catch-up* change whose base is the version the app reached by making
//! the edit. The changes the app still has queued (based on versions it has
//! left) are then ignored by their base, and the catch-up brings the editor
//! to exactly the SDK's view (TP1: `w·e·c = w·r·e'`). docs/ot.md, "Edits
//! against the version the editor shows".

use std::collections::{HashMap, VecDeque};

use crate::ot::{Delta, OtError};

/// Versions the app may still edit at, before the oldest is forgotten.
pub const VERSIONS_KEPT: usize = 1000;

/// An edit moved to the SDK's view.
#[derive(Debug, Clone, PartialEq)]
pub struct Rebased {
    /// The edit, against the SDK's current view.
    pub edit: Delta,
    /// The changes the app had not applied, moved past the edit: `None`
    /// when the app was current.
    pub catch_up: Option<Delta>,
}

/// The versions of the view the app may be at, and how each reaches the
/// SDK's current view.
#[derive(Debug, Clone, Default)]
pub struct ViewVersions {
    /// The version of the SDK's current view.
    head: u64,
    /// Last version id given out (ids are never reused, so a stale id can
    /// never be mistaken for a current one).
    last_id: u64,
    /// For a version the app may be at: the next version towards `head`
    /// and the change that leads there.
    steps: HashMap<u64, (u64, Delta)>,
    /// Keys of `steps`, oldest first (for forgetting).
    order: VecDeque<u64>,
}

impl ViewVersions {
    /// The version of the SDK's current view.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The view was replaced wholesale (joined, reloaded): older versions
    /// no longer lead anywhere. Returns the new version.
    pub fn reset(&mut self) -> u64 {
        self.steps.clear();
        self.order.clear();
        self.head = self.new_id();
        self.head
    }

    /// The view changed by `change`; returns `(base, version)` for the
    /// editor.
    pub fn advance(&mut self, change: Delta) -> (u64, u64) {
        let base = self.head;
        self.head = self.new_id();
        self.insert(base, self.head, change);
        (base, self.head)
    }

    /// Moves `edit`, made by the app at `version`, to the current view. The
    /// caller applies [`Rebased::edit`] to the view, then calls
    /// [`ViewVersions::edited`].
    pub fn rebase(&self, version: u64, edit: Delta) -> Result<Rebased, VersionError> {
        let mut edit = edit;
        let mut catch_up: Option<Delta> = None;
        let mut at = version;
        while at != self.head {
            let (next, change) = self.steps.get(&at).ok_or(VersionError::Stale { version })?;
            // The SDK's change happened first: it wins insert ties.
            let moved_change = edit.transform(change, false)?;
            edit = change.transform(&edit, true)?;
            catch_up = Some(match catch_up {
                Some(c) => c.compose(&moved_change)?,
                None => moved_change,
            });
            at = *next;
        }
        Ok(Rebased { edit, catch_up: catch_up.filter(|c| !c.is_empty()) })
    }

    /// Records that the app made an edit at `version` (rebased by
    /// [`ViewVersions::rebase`]) and the SDK applied it. Returns the version
    /// the app is at now, and the catch-up change `(base, version)` for it
    /// when there is one.
    pub fn edited(&mut self, rebased: Rebased) -> (u64, Option<(u64, u64, Delta)>) {
        let before = self.head;
        self.head = self.new_id();
        self.insert(before, self.head, rebased.edit);
        match rebased.catch_up {
            // Current, or a stale edit whose catch-up is empty: the app's
            // state is the new head.
            None => (self.head, None),
            Some(catch_up) => {
                let app_version = self.new_id();
                self.insert(app_version, self.head, catch_up.clone());
                (app_version, Some((app_version, self.head, catch_up)))
            }
        }
    }

    fn insert(&mut self, from: u64, to: u64, change: Delta) {
        self.steps.insert(from, (to, change));
        self.order.push_back(from);
        while self.order.len() > VERSIONS_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.steps.remove(&oldest);
            }
        }
    }

    fn new_id(&mut self) -> u64 {
        self.last_id += 1;
        self.last_id
    }
}

/// Why an edit at a version was refused (caused by: the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VersionError {
    /// A version the SDK no longer knows: older than [`VERSIONS_KEPT`]
    /// changes, or from before the view was replaced by a `Ready`.
    #[error("edit at version {version}, which is no longer known: show the Ready view and edit again")]
    Stale {
        /// The version the edit named.
        version: u64,
    },
    /// The edit does not fit the version it names.
    #[error(transparent)]
    Ot(#[from] OtError),
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn d(value: serde_json::Value) -> Delta {
        Delta::from_json(&value).unwrap()
    }

    #[test]
    fn a_stale_edit_lands_where_the_user_typed() {
        // Document "abc" at version v0. A remote insert of "X" at 0 reaches
        // the SDK (v1), not yet the editor; the user types "Y" after "abc".
        let abc = d(json!([{"insert": "abc"}]));
        let mut versions = ViewVersions::default();
        let v0 = versions.reset();
        let remote = d(json!([{"insert": "X"}]));
        let (base, _v1) = versions.advance(remote.clone());
        assert_eq!(base, v0);
        let typed = d(json!([{"retain": 3}, {"insert": "Y"}]));
        let rebased = versions.rebase(v0, typed.clone()).unwrap();
        let sdk = abc.apply(&remote).unwrap().apply(&rebased.edit).unwrap();
        let (app_version, catch_up) = versions.edited(rebased);
        let (cu_base, cu_version, cu) = catch_up.unwrap();
        assert_eq!(cu_base, app_version);
        assert_eq!(cu_version, versions.head());
        // The editor: its own typing, then the catch-up (the queued remote
        // change is ignored: its base is v0, the editor is at app_version).
        let editor = abc.apply(&typed).unwrap().apply(&cu).unwrap();
        assert_eq!(editor, sdk);
        assert_eq!(sdk, d(json!([{"insert": "XabcY"}])));
    }

    #[test]
    fn an_edit_at_the_head_needs_no_catch_up() {
        let mut versions = ViewVersions::default();
        let v0 = versions.reset();
        let rebased = versions.rebase(v0, d(json!([{"insert": "a"}]))).unwrap();
        assert!(rebased.catch_up.is_none());
        let (now, catch_up) = versions.edited(rebased);
        assert_eq!((now, catch_up), (versions.head(), None));
    }

    #[test]
    fn forgotten_and_unknown_versions_are_refused() {
        let mut versions = ViewVersions::default();
        let v0 = versions.reset();
        for _ in 0..=VERSIONS_KEPT {
            versions.advance(d(json!([{"insert": "x"}])));
        }
        assert_eq!(versions.rebase(v0, Delta::new()), Err(VersionError::Stale { version: v0 }));
        assert_eq!(
            versions.rebase(10_000_000, Delta::new()),
            Err(VersionError::Stale { version: 10_000_000 })
        );
        let head = versions.reset();
        assert!(versions.rebase(head - 1, Delta::new()).is_err());
    }
}
