//! Commit and process time for groups of several sizes (docs/benchmarks.md,
//! "Device keys"): a member rotates (a commit with its update path, what
//! every membership change costs too) and another member processes it; the
//! same with a new roster in the commit (it carries the whole roster); and
//! adding one device to the group (commit + welcome, which carries the
//! ratchet tree).
//!
//! cargo run --release -p sealcast-groups --example commit_bench -- 10 100 1000

use std::time::{Duration, Instant};

use sealcast_groups::{AppSigner, ChannelGroup, Device, GroupEvent, Roster, SignedRoster};

const CHANNEL: &str = "private-bench";
const ROUNDS: usize = 9;

fn device(app: &AppSigner, user: &str) -> Device {
    let signer = Device::generate_key().unwrap();
    let cert = app.certify(user, "d", signer.public()).unwrap();
    Device::new(signer, cert, app.identity()).unwrap()
}

fn roster(app: &AppSigner, serial: u64, users: &[String]) -> SignedRoster {
    let roster = users.iter().fold(Roster::new(CHANNEL, serial), |r, u| r.with(u, "d"));
    app.sign_roster(roster).unwrap()
}

/// Feeds log entries from `from` until the end; returns the next position.
fn feed(group: &mut ChannelGroup, device: &Device, log: &mut Vec<Vec<u8>>, mut seq: usize) -> usize {
    while seq < log.len() {
        let mut next = seq + 1;
        for event in group.handle_entry(device, seq as u64, &log[seq].clone()) {
            match event {
                GroupEvent::Publish(entry) => log.push(entry),
                GroupEvent::Reread { from } => next = from as usize,
                _ => {}
            }
        }
        seq = next;
    }
    seq
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let sizes: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().expect("group sizes")).collect();
    let sizes = if sizes.is_empty() { vec![10, 100, 1000] } else { sizes };
    println!(
        "| members | rotate: create | rotate: process | rotate: bytes | with a roster: bytes | add one device (create + process) | welcome bytes |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for n in sizes {
        let app = AppSigner::from_seed(&[5; 32]);
        let users: Vec<String> = (0..n).map(|i| format!("u{i}")).collect();
        let devices: Vec<Device> = users.iter().map(|u| device(&app, u)).collect();
        let packages: Vec<Vec<u8>> = devices.iter().map(|d| d.key_package().unwrap()).collect();
        let (a, b) = (&devices[0], &devices[1]);
        let mut ga = ChannelGroup::new(CHANNEL);
        let mut gb = ChannelGroup::new(CHANNEL);
        let mut serial = 1;
        let mut log = vec![ga.start(a, roster(&app, serial, &users)).unwrap()];
        let mut at_a = feed(&mut ga, a, &mut log, 0);
        let commit =
            ga.commit(a, |u, _| users.iter().position(|x| x == u).map(|i| packages[i].clone())).unwrap();
        log.push(commit.unwrap());
        at_a = feed(&mut ga, a, &mut log, at_a);
        let mut at_b = feed(&mut gb, b, &mut log, 0);
        assert_eq!(ga.epoch(), gb.epoch());
        assert_eq!(ga.members().len(), n);

        let (mut create, mut process, mut bytes) = (Vec::new(), Vec::new(), 0);
        for _ in 0..ROUNDS {
            let t = Instant::now();
            let entry = ga.rotate(a).unwrap();
            create.push(t.elapsed());
            bytes = entry.len();
            log.push(entry);
            at_a = feed(&mut ga, a, &mut log, at_a);
            let t = Instant::now();
            at_b = feed(&mut gb, b, &mut log, at_b);
            process.push(t.elapsed());
            assert_eq!(ga.epoch(), gb.epoch());
        }

        // A roster change carries the roster.
        serial += 1;
        ga.offer_roster(a, roster(&app, serial, &users)).unwrap();
        let entry = ga.commit(a, |_, _| None).unwrap().unwrap();
        let roster_bytes = entry.len();
        log.push(entry);
        at_a = feed(&mut ga, a, &mut log, at_a);
        at_b = feed(&mut gb, b, &mut log, at_b);

        // One more device joins: the committer adds it, a member processes.
        let mut grown = users.clone();
        grown.push("new".into());
        let newcomer = device(&app, "new");
        let package = newcomer.key_package().unwrap();
        serial += 1;
        ga.offer_roster(a, roster(&app, serial, &grown)).unwrap();
        let t = Instant::now();
        let entry = ga.commit(a, |_, _| Some(package.clone())).unwrap().unwrap();
        log.push(entry);
        let before = log.len();
        feed(&mut ga, a, &mut log, at_a);
        feed(&mut gb, b, &mut log, at_b);
        let add = t.elapsed();
        let welcome = log[before..].iter().map(Vec::len).sum::<usize>();
        println!(
            "| {n} | {:.2} ms | {:.2} ms | {bytes} | {roster_bytes} | {:.2} ms | {welcome} |",
            median(create).as_secs_f64() * 1e3,
            median(process).as_secs_f64() * 1e3,
            add.as_secs_f64() * 1e3,
        );
    }
}
