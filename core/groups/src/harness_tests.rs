//! The in-memory harness: devices of several users around one log (the
//! sequencer) and one key directory, with deliveries duplicated and
//! reordered, a device offline across many epochs, concurrent commits,
//! garbage and unauthorized commits. Every member must end on the same
//! epoch with the same key; a removed device must learn no later key.

use std::collections::{BTreeMap, HashMap};

use sealcast_core::crypto::{
    Envelope, JsonPointer, Key, Scope, open_signed_value, seal_signed_value, seal_value,
};
use serde_json::json;

use crate::group::GroupEvent;
use crate::*;

const CHANNEL: &str = "private-room";

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

struct Peer {
    device: Device,
    group: ChannelGroup,
    /// The next log position to deliver.
    cursor: usize,
    /// Keys learned: (kid, kv) → thumbprint.
    keys: BTreeMap<(String, u32), String>,
    /// The keys themselves, for sealing in tests.
    ring: BTreeMap<(String, u32), Key>,
    skipped: Vec<(u64, Skip)>,
    lost: usize,
}

struct World {
    app: AppSigner,
    log: Vec<Vec<u8>>,
    directory: HashMap<(String, String), Vec<Vec<u8>>>,
    peers: BTreeMap<String, Peer>,
    rng: Rng,
    serial: u64,
}

fn name(user: &str, device: &str) -> String {
    format!("{user}/{device}")
}

impl World {
    fn new(seed: u64, devices: &[(&str, &str)]) -> Self {
        println!("GROUP_SEED={seed}");
        let app = AppSigner::from_seed(&[7; 32]);
        let mut world = Self {
            app,
            log: Vec::new(),
            directory: HashMap::new(),
            peers: BTreeMap::new(),
            rng: Rng(seed | 1),
            serial: 0,
        };
        for (user, device) in devices {
            world.add_device(user, device);
        }
        world
    }

    fn add_device(&mut self, user: &str, device: &str) {
        let signer = Device::generate_key().unwrap();
        let cert = self.app.certify(user, device, signer.public()).unwrap();
        let device_ = Device::new(signer, cert, self.app.identity()).unwrap();
        // carol's phone has only its last-resort package (a drained
        // directory): every add of it uses that one.
        let packages = if user == "carol" {
            vec![device_.last_resort_key_package().unwrap(); 2]
        } else {
            (0..3).map(|_| device_.key_package().unwrap()).collect()
        };
        self.directory.insert((user.to_owned(), device.to_owned()), packages);
        let peer = Peer {
            device: device_,
            group: ChannelGroup::new(CHANNEL),
            cursor: 0,
            keys: BTreeMap::new(),
            ring: BTreeMap::new(),
            skipped: Vec::new(),
            lost: 0,
        };
        self.peers.insert(name(user, device), peer);
    }

    fn roster(&mut self, devices: &[(&str, &str)]) -> SignedRoster {
        self.serial += 1;
        let mut roster = Roster::new(CHANNEL, self.serial);
        for (user, device) in devices {
            roster = roster.with(user, device);
        }
        self.app.sign_roster(roster).unwrap()
    }

    fn publish(&mut self, entry: Vec<u8>) -> u64 {
        self.log.push(entry);
        self.log.len() as u64 - 1
    }

    /// Delivers what `who` has not seen, reordered and with copies; what it
    /// publishes goes to the log's end.
    fn deliver(&mut self, who: &str) {
        loop {
            let peer = self.peers.get_mut(who).unwrap();
            if peer.cursor >= self.log.len() {
                return;
            }
            let end = self.log.len().min(peer.cursor + 1 + self.rng.below(4));
            let mut batch: Vec<usize> = (peer.cursor..end).collect();
            for i in (1..batch.len()).rev() {
                batch.swap(i, self.rng.below(i + 1));
            }
            if self.rng.below(3) == 0 {
                batch.push(batch[0]);
            }
            peer.cursor = end;
            let mut publish = Vec::new();
            for seq in batch {
                let events = peer.group.handle_entry(&peer.device, seq as u64, &self.log[seq]);
                for event in events {
                    match event {
                        GroupEvent::Epoch { kid, kv, key } => {
                            peer.keys.insert((kid.clone(), kv), key.thumbprint());
                            peer.ring.insert((kid, kv), *key);
                        }
                        GroupEvent::Publish(entry) => publish.push(entry),
                        GroupEvent::Reread { from } => peer.cursor = from as usize,
                        GroupEvent::CommitLost => peer.lost += 1,
                        GroupEvent::Outside => {}
                        GroupEvent::Skipped { seq, why } => peer.skipped.push((seq, why)),
                    }
                }
            }
            for entry in publish {
                self.publish(entry);
            }
        }
    }

    fn deliver_all(&mut self, except: &[&str]) {
        // Until nobody publishes anything more.
        loop {
            let before = self.log.len();
            let names: Vec<String> = self.peers.keys().cloned().collect();
            for who in names.iter().filter(|n| !except.contains(&n.as_str())) {
                self.deliver(who);
            }
            if self.log.len() == before {
                return;
            }
        }
    }

    /// `who` commits what the roster asks for; the entry goes to the log.
    fn commit(&mut self, who: &str) -> Option<u64> {
        let directory = &mut self.directory;
        let peer = self.peers.get_mut(who).unwrap();
        let entry = peer
            .group
            .commit(&peer.device, |user, device| {
                directory.get_mut(&(user.to_owned(), device.to_owned())).and_then(|p| p.pop())
            })
            .unwrap()?;
        Some(self.publish(entry))
    }

    fn offer(&mut self, who: &[&str], roster: &SignedRoster) {
        for w in who {
            let peer = self.peers.get_mut(*w).unwrap();
            peer.group.offer_roster(&peer.device, roster.clone()).unwrap();
        }
    }

    /// alice's phone starts the group on a roster of alice's two devices
    /// and bob's phone, and adds the other two; returns them and the key.
    fn three_members(&mut self) -> ([&'static str; 3], (String, u32)) {
        let roster = self.roster(&DEVICES[..3]);
        let genesis = {
            let peer = self.peers.get_mut("alice/phone").unwrap();
            peer.group.start(&peer.device, roster).unwrap()
        };
        self.publish(genesis);
        self.deliver_all(&[]);
        self.commit("alice/phone").unwrap();
        self.deliver_all(&[]);
        let members = ["alice/laptop", "alice/phone", "bob/phone"];
        let key = self.assert_converged(&members, &members);
        (members, key)
    }

    fn peer(&self, who: &str) -> &Peer {
        &self.peers[who]
    }

    /// Every one of `peers` is on the same epoch with the same key, and sees
    /// the group as `members`; returns the key's (kid, kv).
    fn assert_converged(&self, peers: &[&str], members: &[&str]) -> (String, u32) {
        let first = self.peer(peers[0]);
        let epoch = first.group.epoch().expect("a member");
        let (kid, kv) = first.keys.keys().last().unwrap().clone();
        assert_eq!(kv as u64, epoch);
        for m in peers {
            let peer = self.peer(m);
            assert_eq!(peer.group.epoch(), Some(epoch), "{m} is on another epoch");
            assert_eq!(
                peer.keys.get(&(kid.clone(), kv)),
                first.keys.get(&(kid.clone(), kv)),
                "{m} has another key"
            );
            let mut names: Vec<String> = peer.group.members().iter().map(|(u, d)| name(u, d)).collect();
            names.sort();
            let mut expected: Vec<String> = members.iter().map(|m| m.to_string()).collect();
            expected.sort();
            assert_eq!(names, expected, "{m} sees other members");
        }
        (kid, kv)
    }
}

fn seed() -> u64 {
    std::env::var("GROUP_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

const DEVICES: [(&str, &str); 5] =
    [("alice", "phone"), ("alice", "laptop"), ("bob", "phone"), ("bob", "tablet"), ("carol", "phone")];

#[test]
fn five_devices_of_three_users_converge_through_adds_removes_races_and_garbage() {
    let mut w = World::new(seed(), &DEVICES);

    // alice's phone starts the group; the roster lets three devices in.
    w.three_members();

    // The app lets bob's tablet and carol in; two members commit at once.
    let roster = w.roster(&DEVICES);
    w.offer(&["alice/laptop", "bob/phone"], &roster);
    w.commit("alice/laptop").unwrap();
    w.commit("bob/phone").unwrap();
    w.deliver_all(&[]);
    assert_eq!(w.peer("alice/laptop").lost + w.peer("bob/phone").lost, 1, "one of the two commits lost");
    let all: Vec<String> = DEVICES.iter().map(|(u, d)| name(u, d)).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    w.assert_converged(&all, &all);
    let all_in = w.log.len() as u64;

    // carol goes offline; 20 epochs pass (new rosters with the same
    // devices, and rotations).
    for round in 0..20 {
        let who = ["alice/phone", "bob/tablet", "alice/laptop"][w.rng.below(3)];
        if round % 2 == 0 {
            let roster = w.roster(&DEVICES);
            w.offer(&[who], &roster);
            w.commit(who).unwrap();
        } else {
            let peer = w.peers.get_mut(who).unwrap();
            let entry = peer.group.rotate(&peer.device).unwrap();
            w.publish(entry);
        }
        w.deliver_all(&["carol/phone"]);
    }
    let online: Vec<&str> = all.iter().copied().filter(|m| *m != "carol/phone").collect();
    let (_, kv) = w.assert_converged(&online, &all);
    assert!(kv >= 22);

    // Garbage while carol is away: bytes, a copy of an old commit, a commit
    // of another epoch, a genesis nobody signed.
    let old_commit = w.log.iter().position(|e| e[0] == 2).unwrap();
    let copy = w.log[old_commit].clone();
    w.publish(copy);
    w.publish(vec![2, 0, 0, 0, 3, 1, 2, 3]);
    w.publish(b"not an entry".to_vec());
    let forged = Entry::Genesis {
        group_id: vec![9; 16],
        creator: w.peer("bob/phone").device.certificate().encode(),
        roster: w.roster(&DEVICES).encode(),
        signature: vec![0; 64],
    };
    w.publish(forged.encode());
    // A copy of the genesis (anyone who can append could try to reset the group).
    let genesis = w.log[0].clone();
    w.publish(genesis);
    w.deliver_all(&["carol/phone"]);
    w.assert_converged(&online, &all);

    // carol comes back and reads the 20+ epochs she missed.
    w.deliver_all(&[]);
    w.assert_converged(&all, &all);

    // Every member skipped the same entries for the same reasons.
    let skipped = |m: &str| -> Vec<(u64, Skip)> {
        w.peer(m)
            .skipped
            .iter()
            .copied()
            .filter(|(seq, why)| *seq >= all_in && *why != Skip::NotForUs)
            .collect()
    };
    let reference = skipped("bob/tablet");
    for m in &all {
        assert_eq!(skipped(m), reference, "{m} skipped differently");
    }
    for why in [Skip::StaleEpoch, Skip::Malformed, Skip::BadGenesis, Skip::Replayed] {
        assert!(reference.iter().any(|(_, w)| *w == why), "no {why:?} in {reference:?}");
    }

    // The app removes alice's laptop (lost device); it learns no later key.
    let remaining = [DEVICES[0], DEVICES[2], DEVICES[3], DEVICES[4]];
    let roster = w.roster(&remaining);
    w.offer(&["carol/phone"], &roster);
    w.commit("carol/phone").unwrap();
    w.deliver_all(&[]);
    let rest: Vec<&str> = ["alice/phone", "bob/phone", "bob/tablet", "carol/phone"].to_vec();
    let (kid, kv) = w.assert_converged(&rest, &rest);
    let laptop = w.peer("alice/laptop");
    assert!(!laptop.group.is_member());
    assert!(!laptop.keys.contains_key(&(kid.clone(), kv)));
    assert_eq!(laptop.keys.keys().last().unwrap().1, kv - 1);
    // A later epoch too.
    let roster = w.roster(&remaining);
    w.offer(&["bob/phone"], &roster);
    w.commit("bob/phone").unwrap();
    w.deliver_all(&[]);
    let (_, later) = w.assert_converged(&rest, &rest);
    assert!(!w.peer("alice/laptop").keys.contains_key(&(kid, later)));
}

#[test]
fn an_add_the_roster_does_not_allow_is_skipped_by_every_member() {
    let mut w = World::new(seed(), &DEVICES);
    let (_, (_, before)) = w.three_members();

    // bob's phone, gone rogue, adds carol's phone, which the roster does not
    // list (its certificate is the app's: only the roster says no).
    let package = w.directory.get_mut(&("carol".into(), "phone".into())).unwrap().pop().unwrap();
    let rogue = {
        let peer = w.peers.get_mut("bob/phone").unwrap();
        peer.group.commit_unchecked(&peer.device, vec![package], None).unwrap()
    };
    let at = w.publish(rogue);
    // The other members skip it as unauthorized and can still commit.
    w.deliver_all(&["bob/phone"]);
    for m in ["alice/laptop", "alice/phone"] {
        assert!(w.peer(m).skipped.contains(&(at, Skip::Unauthorized)), "{m}");
        assert_eq!(w.peer(m).group.epoch(), Some(before as u64));
    }
    // A roster signed by another key is refused as an offer, typed.
    let stranger = AppSigner::from_seed(&[1; 32]);
    let forged = stranger.sign_roster(Roster::new(CHANNEL, 99).with("carol", "phone")).unwrap();
    let peer = w.peers.get_mut("alice/phone").unwrap();
    assert_eq!(peer.group.offer_roster(&peer.device, forged), Err(GroupError::BadSignature("roster")));
}

#[test]
fn envelopes_carry_their_senders_signature_and_a_member_cannot_write_as_another() {
    let mut w = World::new(seed(), &DEVICES);
    let (_, (kid, kv)) = w.three_members();
    let (scope, path) = (Scope::chat("room", "m1").unwrap(), JsonPointer::root().child("body"));
    let seal = |w: &World, who: &str, as_: &str, kv: u32| -> Envelope {
        let key = &w.peer(who).ring[&(kid.clone(), kv)];
        let signer = w.peer(as_).device.envelope_signer();
        seal_signed_value(
            key,
            &kid,
            kv,
            &scope,
            &path,
            &json!("hello"),
            signer,
            &mut sealcast_core::crypto::OsRng,
        )
        .unwrap()
    };
    let open = |w: &World, who: &str, envelope: &Envelope| {
        let peer = w.peer(who);
        open_signed_value(&peer.ring[&(kid.clone(), envelope.kv)], &scope, &path, envelope, &peer.group)
    };
    let alice = w.peer("alice/phone").device.envelope_signer().id();
    // A member's envelope opens at another member, naming its sender.
    let (value, by) = open(&w, "bob/phone", &seal(&w, "alice/phone", "alice/phone", kv)).unwrap();
    assert_eq!((value, by), (json!("hello"), Some(alice)));
    // bob seals and claims alice sent it: refused, typed.
    let mut forged = seal(&w, "bob/phone", "bob/phone", kv);
    forged.signature.as_mut().unwrap().signer = alice;
    assert_eq!(open(&w, "alice/laptop", &forged).unwrap_err().code(), "signature_invalid");
    // An unsigned envelope under the group's key: refused.
    let key = &w.peer("bob/phone").ring[&(kid.clone(), kv)];
    let plain =
        seal_value(key, &kid, kv, &scope, &path, &json!("x"), &mut sealcast_core::crypto::OsRng).unwrap();
    assert_eq!(open(&w, "alice/phone", &plain).unwrap_err().code(), "signature_required");
    // A device that is not a member (carol's phone) signing: unknown.
    let stranger = seal(&w, "bob/phone", "carol/phone", kv);
    assert_eq!(open(&w, "alice/phone", &stranger).unwrap_err().code(), "unknown_signer");

    // alice's laptop is removed; what it signed before still verifies, an
    // envelope it signs under the next epoch's key (which it cannot even
    // have; built here with another member's) does not.
    let before = seal(&w, "alice/laptop", "alice/laptop", kv);
    let roster = w.roster(&[DEVICES[0], DEVICES[2]]);
    w.offer(&["bob/phone"], &roster);
    w.commit("bob/phone").unwrap();
    w.deliver_all(&[]);
    let rest = ["alice/phone", "bob/phone"];
    let (_, next) = w.assert_converged(&rest, &rest);
    assert_eq!(open(&w, "bob/phone", &before).unwrap().0, json!("hello"));
    let after = seal(&w, "bob/phone", "alice/laptop", next);
    assert_eq!(open(&w, "alice/phone", &after).unwrap_err().code(), "unknown_signer");
}

#[test]
fn a_welcome_the_relay_changed_is_skipped_and_the_real_one_still_works() {
    let mut w = World::new(seed(), &DEVICES);
    let two = [DEVICES[0], DEVICES[1]];
    let roster = w.roster(&two);
    let genesis = {
        let peer = w.peers.get_mut("alice/phone").unwrap();
        peer.group.start(&peer.device, roster).unwrap()
    };
    w.publish(genesis);
    w.deliver_all(&[]);
    w.commit("alice/phone").unwrap();
    // alice sees her commit win and publishes the welcome; hold it back.
    w.deliver("alice/phone");
    let real = w.log.pop().unwrap();
    let Ok(Entry::Welcome { commit_seq, welcome, roster, committer, signature }) = Entry::decode(&real)
    else {
        panic!("not a welcome")
    };
    // The relay moves the commit it names, or swaps in another roster the
    // app did sign (a newer one, which the group is not on): the
    // committer's signature no longer covers it.
    let other = w.roster(&DEVICES);
    let moved = Entry::Welcome {
        commit_seq: commit_seq - 1,
        welcome: welcome.clone(),
        roster: roster.clone(),
        committer: committer.clone(),
        signature: signature.clone(),
    };
    let swapped = Entry::Welcome { commit_seq, welcome, roster: other.encode(), committer, signature };
    let (at_moved, at_swapped) = (w.publish(moved.encode()), w.publish(swapped.encode()));
    w.publish(real);
    w.deliver_all(&[]);
    let laptop = w.peer("alice/laptop");
    assert!(laptop.skipped.iter().any(|(seq, _)| *seq == at_moved), "{:?}", laptop.skipped);
    assert!(laptop.skipped.contains(&(at_swapped, Skip::Unauthorized)), "{:?}", laptop.skipped);
    let members = ["alice/phone", "alice/laptop"];
    w.assert_converged(&members, &members);
}

#[test]
fn entries_that_come_early_are_kept_within_a_count_and_a_byte_budget() {
    let w = World::new(seed(), &DEVICES[..1]);
    let peer = w.peer("alice/phone");
    let mut group = ChannelGroup::new(CHANNEL);
    // Position 0 never comes; 1 MiB entries come after it.
    let big = vec![0u8; 1 << 20];
    let fits = crate::group::MAX_EARLY_BYTES / big.len();
    for seq in 1..=fits as u64 {
        assert!(group.handle_entry(&peer.device, seq, &big).is_empty(), "entry {seq} was kept");
    }
    // A copy of one kept costs nothing; one more does not fit: read again.
    assert!(group.handle_entry(&peer.device, 1, &big).is_empty());
    let over = group.handle_entry(&peer.device, fits as u64 + 1, &big);
    assert_eq!(over, vec![GroupEvent::Reread { from: 0 }]);
    // Once position 0 comes, the kept ones are applied (skipped as garbage) and freed.
    let events = group.handle_entry(&peer.device, 0, b"x");
    assert_eq!(events.len(), fits + 1);
    assert_eq!(group.next_seq(), fits as u64 + 1);
    assert!(group.handle_entry(&peer.device, fits as u64 + 2, &big).is_empty(), "room again");
}
