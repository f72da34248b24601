//! End-to-end encryption figures: what sealing and opening a frame costs (native), what a join
//! costs (commit, Welcome, joining from it), and the rekey after a leave in a meeting of 50:
//! the remover's commit and every remaining member applying it.
//!
//! `cargo bench -p videocall-e2ee --bench e2ee` (prints figures; BENCHMARKS.md).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use videocall_e2ee::{Handled, Member, TestAuthority};

/// A member of the meeting "bench" holding a credential of the control plane's.
fn member(user: &str) -> Member {
    static CONTROL_PLANE: OnceLock<TestAuthority> = OnceLock::new();
    CONTROL_PLANE
        .get_or_init(|| TestAuthority::new("bench"))
        .member(user)
        .unwrap()
}

fn per_op(total: Duration, n: u32) -> f64 {
    total.as_secs_f64() * 1e6 / f64::from(n)
}

fn pair() -> (Member, Member) {
    let mut alice = member("alice");
    let mut bob = member("bob");
    alice.create("bench").unwrap();
    let proposed = alice.propose_add(&[&bob.key_package().unwrap()]).unwrap();
    let Ok(Handled::Committed {
        welcome: Some(welcome),
        ..
    }) = alice.handle(&proposed.commit)
    else {
        panic!("alice's commit");
    };
    bob.join(&welcome).unwrap();
    (alice, bob)
}

fn frames() {
    let (mut alice, mut bob) = pair();
    println!("frame bytes   seal µs   open µs   overhead bytes");
    for size in [160usize, 1_200, 12_000, 60_000] {
        let payload = vec![0x5a; size];
        let metadata = [1u8; 12];
        let n = (20_000_000 / (size as u32 + 500)).max(200);
        let mut sealed = Vec::with_capacity(n as usize);
        let start = Instant::now();
        for _ in 0..n {
            sealed.push(alice.seal(&metadata, &payload).unwrap());
        }
        let seal = per_op(start.elapsed(), n);
        let overhead = sealed[0].len() - size;
        let start = Instant::now();
        for frame in &sealed {
            std::hint::black_box(bob.open(&metadata, frame).unwrap());
        }
        let open = per_op(start.elapsed(), n);
        println!("{size:>11} {seal:>9.2} {open:>9.2} {overhead:>16}");
    }
}

/// A meeting of `size` built by one commit adding everyone after the first.
fn meeting(size: usize) -> Vec<Member> {
    let mut host = member("m-0");
    host.create("bench").unwrap();
    let mut others: Vec<Member> = (1..size).map(|i| member(&format!("m-{i}"))).collect();
    let packages: Vec<Vec<u8>> = others.iter().map(|m| m.key_package().unwrap()).collect();
    let refs: Vec<&[u8]> = packages.iter().map(Vec::as_slice).collect();
    let proposed = host.propose_add(&refs).unwrap();
    let Ok(Handled::Committed {
        welcome: Some(welcome),
        ..
    }) = host.handle(&proposed.commit)
    else {
        panic!("host's commit");
    };
    for member in &mut others {
        member.join(&welcome).unwrap();
    }
    let mut all = vec![host];
    all.extend(others);
    all
}

fn join() {
    let rounds = 20u32;
    let (mut propose, mut apply, mut welcome_join) =
        (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let mut members = meeting(10);
        let mut newcomer = member("newcomer");
        let package = newcomer.key_package().unwrap();
        let start = Instant::now();
        let proposed = members[0].propose_add(&[&package]).unwrap();
        propose += start.elapsed();
        let start = Instant::now();
        let Ok(Handled::Committed {
            welcome: Some(welcome),
            ..
        }) = members[0].handle(&proposed.commit)
        else {
            panic!("commit");
        };
        for member in &mut members[1..] {
            member.handle(&proposed.commit).unwrap();
        }
        apply += start.elapsed() / 10;
        let start = Instant::now();
        newcomer.join(&welcome).unwrap();
        welcome_join += start.elapsed();
    }
    println!(
        "join into a meeting of 10: commit {:.2} ms, applying it {:.2} ms per member, \
         joining from the Welcome {:.2} ms",
        propose.as_secs_f64() * 1e3 / f64::from(rounds),
        apply.as_secs_f64() * 1e3 / f64::from(rounds),
        welcome_join.as_secs_f64() * 1e3 / f64::from(rounds),
    );
}

fn rekey_after_leave(size: usize) {
    let rounds = 5u32;
    let (mut commit, mut everyone) = (Duration::ZERO, Duration::ZERO);
    let mut slowest = Duration::ZERO;
    for _ in 0..rounds {
        let mut members = meeting(size);
        let leaver = members[size - 1].name().to_owned();
        let start = Instant::now();
        let proposed = members[0].propose_remove(&[&leaver]).unwrap();
        members[0].handle(&proposed.commit).unwrap();
        commit += start.elapsed();
        let start = Instant::now();
        for member in &mut members[1..size - 1] {
            let one = Instant::now();
            member.handle(&proposed.commit).unwrap();
            slowest = slowest.max(one.elapsed());
        }
        everyone += start.elapsed();
    }
    println!(
        "rekey after a leave in a meeting of {size}: commit {:.2} ms, every other member \
         applying it {:.2} ms in all ({:.2} ms each, slowest {:.2} ms); one core",
        commit.as_secs_f64() * 1e3 / f64::from(rounds),
        everyone.as_secs_f64() * 1e3 / f64::from(rounds),
        everyone.as_secs_f64() * 1e3 / f64::from(rounds) / (size - 2) as f64,
        slowest.as_secs_f64() * 1e3,
    );
}

fn main() {
    frames();
    join();
    rekey_after_leave(50);
}
