//! Presence rosters: who is on a presence channel.

use std::collections::BTreeMap;

use serde_json::Value;

/// A presence channel member.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The user id.
    pub user_id: String,
    /// The app's public info about the user (`null` if none).
    pub user_info: Value,
}

impl Member {
    /// From `member_added` data: `{"user_id", "user_info"?}`.
    pub fn from_json(data: &Value) -> Option<Member> {
        let user_id = match data.get("user_id")? {
            Value::String(id) => id.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        Some(Member { user_id, user_info: data.get("user_info").cloned().unwrap_or(Value::Null) })
    }
}

/// The members of one presence channel, by user id.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Roster {
    members: BTreeMap<String, Value>,
    me: Option<String>,
}

impl Roster {
    /// From `subscription_succeeded` data:
    /// `{"presence": {"ids": [...], "hash": {id: info}, "count": n}}`.
    pub fn from_subscription(data: &Value) -> Roster {
        let presence = data.get("presence");
        let hash = presence.and_then(|p| p.get("hash")).and_then(Value::as_object);
        let members = presence
            .and_then(|p| p.get("ids"))
            .and_then(Value::as_array)
            .map(|ids| {
                ids.iter()
                    .filter_map(|id| {
                        id.as_str().map(str::to_owned).or_else(|| id.as_u64().map(|n| n.to_string()))
                    })
                    .map(|id| {
                        let info = hash.and_then(|h| h.get(&id)).cloned().unwrap_or(Value::Null);
                        (id, info)
                    })
                    .collect()
            })
            .unwrap_or_default();
        Roster { members, me: None }
    }

    /// Adds a member; false if already present.
    pub fn add(&mut self, member: Member) -> bool {
        self.members.insert(member.user_id, member.user_info).is_none()
    }

    /// Removes a member, returning it.
    pub fn remove(&mut self, user_id: &str) -> Option<Member> {
        let user_info = self.members.remove(user_id)?;
        Some(Member { user_id: user_id.to_owned(), user_info })
    }

    /// Everyone, ordered by user id.
    pub fn members(&self) -> Vec<Member> {
        self.members
            .iter()
            .map(|(id, info)| Member { user_id: id.clone(), user_info: info.clone() })
            .collect()
    }

    /// This client's own id, when known.
    pub fn me(&self) -> Option<&str> {
        self.me.as_deref()
    }

    /// Records this client's own id.
    pub fn set_me(&mut self, user_id: String) {
        self.me = Some(user_id);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rosters_track_members() {
        let data =
            json!({"presence": {"ids": ["a", "b"], "hash": {"a": {"name": "Ann"}, "b": null}, "count": 2}});
        let mut roster = Roster::from_subscription(&data);
        assert_eq!(roster.members().len(), 2);
        assert_eq!(roster.members()[0].user_info, json!({"name": "Ann"}));
        assert!(roster.add(Member { user_id: "c".into(), user_info: Value::Null }));
        assert!(!roster.add(Member { user_id: "c".into(), user_info: Value::Null }));
        assert_eq!(roster.remove("a").unwrap().user_info, json!({"name": "Ann"}));
        assert!(roster.remove("a").is_none());
        assert_eq!(Member::from_json(&json!({"user_id": 7})).unwrap().user_id, "7");
        assert!(Member::from_json(&json!({})).is_none());
    }
}
