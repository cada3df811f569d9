//! The app's answers to key questions: a grant goes to the ring it was
//! asked for (the app's, or a document's), a refusal is reported and ends
//! what waited for it.

use super::{ClientMachine, Event};
use crate::client::{KeyError, NotSentReason};
use crate::doc::DocClientEvent;
use crate::keys::{KeyGrant, KeyRefusal, KeyRequest};

impl ClientMachine {
    pub(super) fn insert_key(&mut self, request: &KeyRequest, grant: KeyGrant) {
        let Some(doc_id) = &request.doc_id else {
            if let Err(err) = self.keys.grant(request, grant.kv, grant.key) {
                let error = KeyError::Rejected(err);
                self.events.push_back(Event::KeyRefused { request: request.clone(), error });
            }
            self.release(None);
            return self.flush_sends();
        };
        // Closed meanwhile: nothing to do.
        let Some(doc) = self.docs.get_mut(doc_id) else { return };
        // The grant's hint counts only for a new session key.
        let key_hint = grant.key_hint.filter(|_| request.key_hint.is_none());
        let mut keys = self.keys.for_doc(doc_id);
        if let Err(err) = doc.add_key(&mut keys, &request.kid, grant.kv, grant.key, key_hint) {
            let error = KeyError::DocumentRejected(err);
            self.events.push_back(Event::KeyRefused { request: request.clone(), error });
        }
    }

    pub(super) fn key_refused(&mut self, request: &KeyRequest, error: KeyError) {
        let refusal = match &error {
            KeyError::Provider(refusal) => refusal.clone(),
            other => KeyRefusal::Refused(other.to_string()),
        };
        self.events.push_back(Event::KeyRefused { request: request.clone(), error });
        if let Some(doc_id) = &request.doc_id {
            match request.kv {
                // Without its session key a document can never be edited:
                // it is closed, after its `KeyNeeded` says which key did not
                // come (an editor showing "loading" would wait for ever).
                None => {
                    if self.docs.contains_key(doc_id) {
                        let event = DocClientEvent::KeyNeeded {
                            kid: request.kid.clone(),
                            kv: None,
                            key_hint: request.key_hint.clone(),
                        };
                        self.events.push_back(Event::Document { doc_id: doc_id.clone(), event });
                    }
                    self.close_document(doc_id);
                }
                // The op (or snapshot) that named a refused version is
                // skipped (`Skipped`) or passed over; the document goes on.
                Some(kv) => {
                    self.keys.refuse(request, kv);
                    if let Some(doc) = self.docs.get_mut(doc_id) {
                        doc.keys_changed(&mut self.keys.for_doc(doc_id));
                    }
                }
            }
            return;
        }
        match request.kv {
            Some(kv) => {
                self.keys.refuse(request, kv);
                self.release(None);
            }
            None => {
                for (at, send) in self.sends.take_all() {
                    if send.seal.as_ref().is_some_and(|seal| seal.kid == request.kid) {
                        self.not_sent(send, NotSentReason::KeyRefused(refusal.clone()));
                    } else {
                        self.sends.put_back(at, send);
                    }
                }
                self.flush_sends();
            }
        }
    }
}
