//! The device-keys mode against the real binary: devices of three users
//! publish key packages to the relay's key directory, one starts the
//! channel's group, and the group log travels as a document through the
//! blind sequencer (`GroupLink` over tungstenite clients). Every member
//! ends on the same epoch with the same key; a device the app drops from
//! the roster is removed and learns no later key; envelopes sealed with the
//! epoch key carry their sender's signature; nothing of the keys or of a
//! sealed canary reaches the relay's log or data directory.

mod common;

use std::time::{Duration, Instant};

use common::{Client, Seen, Server, TempDir, cluster_node, redis};
use sealcast_core::crypto::{
    JsonPointer, Key, KeyRing, OsRng, Scope, open_fields_signed, open_signed_value,
    seal_fields_signed_with_rng, seal_signed_value,
};
use sealcast_groups::{AppSigner, Device, GroupEvent, GroupLink, LinkEvent, Roster, SignedRoster};
use serde_json::json;

const CHANNEL: &str = "private-room";

struct Peer {
    name: String,
    device: Device,
    link: GroupLink,
    client: Client,
    /// The newest epoch key: (kid, kv, key).
    key: Option<(String, u32, Key)>,
    outside: bool,
}

async fn peer(server: &Server, app: &AppSigner, user: &str, device: &str) -> Peer {
    let key = Device::generate_key().unwrap();
    let cert = app.certify(user, device, key.public()).unwrap();
    let device_ = Device::new(key, cert, app.identity()).unwrap();
    let mut link = GroupLink::new(CHANNEL).unwrap();
    let mut client = server.client().await;
    client.sign_in(user).await;
    client.join(link.log_channel(), None).await;
    link.publish_key_packages(&device_, 2).unwrap();
    link.join();
    Peer { name: format!("{user}/{device}"), device: device_, link, client, key: None, outside: false }
}

/// Moves frames both ways until `done` holds (at most 30 s).
async fn pump(peers: &mut [Peer], done: impl Fn(&[Peer]) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(peers) {
        assert!(Instant::now() < deadline, "the group did not settle");
        for peer in peers.iter_mut() {
            while let Some(frame) = peer.link.poll_frame() {
                peer.client.send_raw(&frame).await;
            }
            while let Some(seen) = peer.client.next_within(Duration::from_millis(5)).await {
                let Seen::Frame(frame) = seen else { panic!("{} was disconnected", peer.name) };
                let event = frame["event"].as_str().unwrap_or_default();
                let data = match &frame["data"] {
                    serde_json::Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
                    data => data.clone(),
                };
                peer.link.handle(&peer.device, event, &data, sealcast_core::time::Instant::now());
            }
            peer.link.handle_timeout(&peer.device, sealcast_core::time::Instant::now());
            while let Some(event) = peer.link.poll_event() {
                match event {
                    LinkEvent::Group(GroupEvent::Epoch { kid, kv, key }) => peer.key = Some((kid, kv, *key)),
                    LinkEvent::Group(GroupEvent::Outside) => peer.outside = true,
                    LinkEvent::Refused { code } => panic!("{}: refused {code}", peer.name),
                    _ => {}
                }
            }
        }
    }
}

fn roster(app: &AppSigner, serial: u64, devices: &[(&str, &str)]) -> SignedRoster {
    let roster = devices.iter().fold(Roster::new(CHANNEL, serial), |r, (u, d)| r.with(u, d));
    app.sign_roster(roster).unwrap()
}

/// Every one of `names` is on one epoch with one key and sees `names` as members.
fn settled(peers: &[Peer], names: &[&str]) -> bool {
    let on: Vec<&Peer> = peers.iter().filter(|p| names.contains(&p.name.as_str())).collect();
    let first = on[0].key.as_ref().map(|(kid, kv, key)| (kid.clone(), *kv, key.thumbprint()));
    first.is_some()
        && on.iter().all(|p| {
            p.key.as_ref().map(|(kid, kv, key)| (kid.clone(), *kv, key.thumbprint())) == first
                && p.link.group().members().len() == names.len()
        })
}

#[tokio::test]
async fn three_devices_share_epochs_through_the_relay_and_a_removed_one_is_out() {
    let root = TempDir::new("device-keys");
    let server = Server::start_in(&root.0, "", "", &[("RUST_LOG", "trace")]);
    let app = AppSigner::from_seed(&[11; 32]);
    let devices = [("alice", "phone"), ("alice", "laptop"), ("bob", "phone")];
    let mut peers = Vec::new();
    for (user, device) in devices {
        peers.push(peer(&server, &app, user, device).await);
    }
    // Everyone's key packages are in the directory before the group starts.
    pump(&mut peers, |_| true).await;
    let first = roster(&app, 1, &devices);
    let alice = &mut peers[0];
    alice.link.start(&alice.device, first).unwrap();
    let all = ["alice/phone", "alice/laptop", "bob/phone"];
    pump(&mut peers, |p| settled(p, &all)).await;

    // A sealed message: it opens at another member, naming its sender.
    let canary = format!("CANARY-mls-{}", std::process::id());
    let (scope, path) = (Scope::chat(CHANNEL, "m1").unwrap(), JsonPointer::root().child("body"));
    let (kid, kv, key) = peers[0].key.clone().unwrap();
    let signer = peers[0].device.envelope_signer();
    let signer_id = signer.id();
    let envelope = seal_signed_value(
        &key,
        &kid,
        kv,
        &scope,
        &path,
        &json!(canary),
        signer,
        &mut sealcast_core::crypto::OsRng,
    )
    .unwrap();
    let bob_key = peers[2].key.as_ref().unwrap().2.clone();
    let (value, by) = open_signed_value(&bob_key, &scope, &path, &envelope, peers[2].link.group()).unwrap();
    assert_eq!((value, by), (json!(canary), Some(signer_id)));
    // A whole event sealed field by field, signed, sent through the relay as
    // a client event: the relay sees envelopes only; bob opens it and
    // learns who sent it.
    peers[0].client.join(CHANNEL, None).await;
    peers[2].client.join(CHANNEL, None).await;
    let mut ring = KeyRing::single(&kid, kv, key.clone()).unwrap();
    let mut data = json!({"body": canary, "to": "bob"});
    let alice_signer = peers[0].device.envelope_signer();
    seal_fields_signed_with_rng(&mut data, &["/body"], &mut ring, &kid, &scope, alice_signer, &mut OsRng)
        .unwrap();
    peers[0].client.send(json!({"event": "client-msg", "channel": CHANNEL, "data": data})).await;
    let mut got = peers[2].client.expect_event("client-msg").await["data"].clone();
    let bob_ring = KeyRing::single(&kid, kv, bob_key).unwrap();
    let (_, by) = open_fields_signed(&mut got, &bob_ring, &scope, &["/body"], peers[2].link.group()).unwrap();
    assert_eq!((got["body"].clone(), by), (json!(canary), Some(signer_id)));

    // The app drops bob's phone (a lost device); alice's laptop commits.
    let second = roster(&app, 2, &devices[..2]);
    let laptop = &mut peers[1];
    laptop.link.offer_roster(&laptop.device, second, sealcast_core::time::Instant::now()).unwrap();
    let rest = ["alice/phone", "alice/laptop"];
    pump(&mut peers, |p| settled(p, &rest) && p[2].outside).await;
    let (_, later, _) = peers[0].key.clone().unwrap();
    println!("epoch after the adds: {kv}, after the removal: {later}");
    assert!(later > kv);
    assert!(peers[2].key.as_ref().unwrap().1 < later, "the removed device learned a later key");

    // The relay saw ciphertext only: no canary, no key in its log or data.
    let log = server.stderr();
    assert!(!log.contains(&canary), "the canary reached the relay's log");
    for peer in &peers {
        if let Some((_, _, key)) = &peer.key {
            assert!(!log.contains(&key.to_base64url()), "a key reached the relay's log");
        }
    }
    for entry in walk(&root.0.join("data")) {
        let bytes = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(&canary), "the canary is in {}", entry.display());
    }
}

/// Cluster mode: devices on two nodes sharing one Redis — the group log
/// (the documents' Redis store orders it) and the key directory (Redis
/// too) are one for both nodes.
#[tokio::test]
async fn devices_on_two_cluster_nodes_share_one_group() {
    let Some(redis) = redis() else { return };
    let dir = TempDir::new("device-keys-cluster");
    let nodes = [cluster_node(&redis, &dir, "a", "", ""), cluster_node(&redis, &dir, "b", "", "")];
    let app = AppSigner::from_seed(&[12; 32]);
    let devices = [("alice", "phone"), ("bob", "phone"), ("carol", "phone")];
    let mut peers = Vec::new();
    for (n, (user, device)) in devices.into_iter().enumerate() {
        peers.push(peer(&nodes[n % 2], &app, user, device).await);
    }
    pump(&mut peers, |_| true).await;
    let alice = &mut peers[0];
    alice.link.start(&alice.device, roster(&app, 1, &devices)).unwrap();
    let all = ["alice/phone", "bob/phone", "carol/phone"];
    pump(&mut peers, |p| settled(p, &all)).await;
    // A rotation from a device on the other node reaches everyone.
    let bob = &mut peers[1];
    let (_, before, _) = bob.key.clone().unwrap();
    bob.link
        .offer_roster(&bob.device, roster(&app, 2, &devices), sealcast_core::time::Instant::now())
        .unwrap();
    pump(&mut peers, |p| settled(p, &all) && p[0].key.as_ref().is_some_and(|(_, kv, _)| *kv > before)).await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() { files.extend(walk(&path)) } else { files.push(path) }
    }
    files
}
