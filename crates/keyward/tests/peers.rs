//! Peer backup providers end to end, with five real `keyward peer serve` processes on 127.0.0.1
//! and threshold 3: a fresh machine recovers with an operator's release ticket; the box itself
//! unlocks after a restart with two peers down, and fails with the three that are down named; a
//! peer whose stored share was replaced is named while recovery still succeeds; no peer's files
//! or logs hold the key, the ticket or a share in the clear.

mod util;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use keyward_peer::api::StoreShareRequest;
use keyward_peer::card::PeerCard;
use keyward_peer::seal::{self, Purpose};
use sqlx::Row;
use util::{CANARY_KEY, Dir};

/// A peer process; killed when dropped.
struct PeerProcess {
    child: Option<Child>,
    url: String,
    data: String,
    port: u16,
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

impl PeerProcess {
    /// `peer init` in `dir/NAME`, trusting the operator key `dir/op.pub`, then `peer serve`.
    fn start(dir: &Dir, name: &str, operator: &str) -> PeerProcess {
        let port = TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("a").port();
        let url = format!("https://127.0.0.1:{port}");
        dir.ok(["peer", "init", "--data", name, "--url", &url, "--operator", operator]);
        let mut peer = PeerProcess { child: None, url, data: name.to_string(), port };
        peer.serve(dir);
        peer
    }

    /// `peer serve` (again) on its data folder and port.
    fn serve(&mut self, dir: &Dir) {
        let (name, port) = (&self.data, self.port);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.path(&format!("{name}.log")))
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_keyward"))
            .args(["peer", "serve", "--data", name, "--listen", &format!("127.0.0.1:{port}")])
            .current_dir(dir.root())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start a peer");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "peer {name} did not start:\n{}", dir.listing());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(child);
    }

    fn card(&self) -> String {
        format!("{}/peer-card.json", self.data)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Five peers, and a box (canary key, plain slot) with a 3-of-5 peers slot named `pve-07`.
fn five_peers(dir: &Dir) -> Vec<PeerProcess> {
    five_peers_with(dir, "either")
}

fn five_peers_with(dir: &Dir, policy: &str) -> Vec<PeerProcess> {
    five_peers_enrolled(dir, policy, &[])
}

/// Five peers and a plain-slot keybox enrolled with them, 3 of 5, under `policy`, with `extra`
/// options to `enroll peers`.
fn five_peers_enrolled(dir: &Dir, policy: &str, extra: &[&str]) -> Vec<PeerProcess> {
    let keygen = dir.ok(["operator", "keygen", "--out", "op.key", "--json"]);
    let public: serde_json::Value = serde_json::from_str(&keygen.stdout()).expect("json");
    let operator = public["public_key"].as_str().expect("key").to_string();
    let peers: Vec<PeerProcess> =
        (1..=5).map(|i| PeerProcess::start(dir, &format!("peer{i}"), &operator)).collect();
    dir.init_plain_canary();
    dir.enrollment_token();
    let mut enroll: Vec<String> = [
        "enroll",
        "peers",
        "--threshold",
        "3",
        "--box",
        "pve-07",
        "--policy",
        policy,
        "--token-file",
        "token.txt",
    ]
    .map(String::from)
    .to_vec();
    for peer in &peers {
        enroll.extend(["--peer".to_string(), peer.card()]);
    }
    enroll.extend(extra.iter().map(|e| e.to_string()));
    enroll.push("--json".into());
    let out = dir.ok(enroll);
    dir.write("enroll.json", out.stdout().as_bytes());
    peers
}

/// A requester key made on the "fresh machine" (`requester.key`, once), and a release ticket
/// for `pve-07` naming it, signed with `operator_key`, in `ticket`.
fn release_ticket(dir: &Dir, operator_key: &str, ticket: &str) {
    if !dir.path("requester.pub").exists() {
        let out = dir.ok(["operator", "keygen", "--out", "requester.key", "--json"]);
        let value: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
        dir.write("requester.pub", value["public_key"].as_str().expect("key").as_bytes());
    }
    let public = String::from_utf8(dir.read("requester.pub")).expect("text");
    dir.ok([
        "operator",
        "approve-release",
        "--box",
        "pve-07",
        "--key",
        operator_key,
        "--requester",
        &public,
        "--out",
        ticket,
    ]);
}

fn recover_args(dir: &Dir, peers: &[PeerProcess], ticket: &str, out: &str) -> Vec<String> {
    let fp = fingerprint_of(dir);
    let mut args: Vec<String> = vec!["recover".into(), "--peers".into()];
    args.extend(peers.iter().map(PeerProcess::card));
    args.extend(
        [
            "--box",
            "pve-07",
            "--ticket-file",
            ticket,
            "--requester-key",
            "requester.key",
            "--expect-fingerprint",
            &fp,
            "--out",
            out,
        ]
        .map(String::from),
    );
    args
}

fn fingerprint_of(dir: &Dir) -> String {
    let out = dir.ok(["fingerprint", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    value["fingerprint"].as_str().expect("fingerprint").to_string()
}

#[test]
fn three_of_five_peers_give_the_key_back_and_name_the_ones_that_are_down() {
    let dir = Dir::new("peers-3of5");
    let mut peers = five_peers(&dir);
    // Issue 23.7: the box's overview counts the peers that hold the current set.
    let status: serde_json::Value =
        serde_json::from_str(&dir.ok(["status", "--json"]).stdout()).expect("json");
    assert_eq!(status["peers"][0]["holding"], 5, "{status}");
    assert_eq!(status["peers"][0]["threshold"], 3, "{status}");

    // A fresh machine (no keybox, no identity) with an operator's release ticket.
    release_ticket(&dir, "op.key", "t.txt");
    let mut args = vec!["--keybox".to_string(), "none/keybox.json".into()];
    args.extend(recover_args(&dir, &peers, "t.txt", "fresh.bin"));
    dir.ok(args);
    assert_eq!(dir.read("fresh.bin"), CANARY_KEY);
    assert_eq!(dir.mode("fresh.bin"), 0o600);

    // The box after a restart, with two peers down.
    peers[0].kill();
    peers[3].kill();
    dir.ok(["unlock", "--slot", "peers-2", "--out", "restart.bin"]);
    assert_eq!(dir.read("restart.bin"), CANARY_KEY);

    // Three down: exit 8, the three named, nothing written.
    peers[4].kill();
    let out = dir.keyward().args(["unlock", "--slot", "peers-2", "--out", "x.bin"]).run();
    out.assert_exit_code(8).assert_one_line_error();
    for down in [&peers[0], &peers[3], &peers[4]] {
        assert!(out.stderr().contains(&down.url), "names {}{}", down.url, out.report());
    }
    assert!(!out.stderr().contains(&peers[1].url), "{}", out.report());
    assert!(!dir.path("x.bin").exists());
}

/// Replaces the share peer `name` holds with a share of another key, sealed as a real one
/// would be: what a lying peer (or someone who edited its database) hands out.
fn plant_wrong_share(dir: &Dir, name: &str) {
    let card = PeerCard::parse(&dir.read(&format!("{name}/peer-card.json"))).expect("card");
    let url = format!("sqlite://{}", dir.path(&format!("{name}/peer.db")).display());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.expect("peer database");
        let row = sqlx::query("SELECT owner, owner_name, keybox_id, share_set, threshold, policy, fingerprint, x FROM shares")
            .fetch_one(&pool)
            .await
            .expect("one share");
        let owner: String = row.get(0);
        let x = u8::try_from(row.get::<i64, _>(7)).expect("x");
        let mut request = StoreShareRequest {
            owner_name: row.get(1),
            keybox_id: row.get(2),
            share_set: row.get(3),
            threshold: u8::try_from(row.get::<i64, _>(4)).expect("threshold"),
            policy: row.get::<String, _>(5).parse().expect("policy"),
            fingerprint: row.get(6),
            x,
            share: seal::Sealed { enc: String::new(), ct: String::new() },
            enrollment: None,
attestation: None,
};
        let mut wrong = vec![x];
        wrong.extend_from_slice(b"not-the-share-of-the-canary-key!");
        request.share =
            seal::seal(&card.seal_key, Purpose::StoredShare, &request.binding(&owner), &wrong)
                .expect("seal");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE shares SET enc = '{}', ct = '{}'",
            request.share.enc, request.share.ct
        )))
        .execute(&pool)
        .await
        .expect("update");
        pool.close().await;
    });
}

#[test]
fn a_peer_with_a_wrong_share_is_named_and_the_key_still_comes_back() {
    let dir = Dir::new("peers-liar");
    let peers = five_peers(&dir);
    plant_wrong_share(&dir, "peer2");
    let out = dir.ok(["unlock", "--slot", "peers-2", "--out", "k.bin"]);
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
    assert!(
        out.stderr().contains(&format!("the share from {} does not fit", peers[1].url)),
        "the liar is named{}",
        out.report()
    );
    // Two liars of five still leave three honest shares.
    plant_wrong_share(&dir, "peer5");
    dir.ok(["unlock", "--slot", "peers-2", "--out", "k2.bin"]);
    assert_eq!(dir.read("k2.bin"), CANARY_KEY);
    // Three do not: the key is never guessed.
    plant_wrong_share(&dir, "peer1");
    let out = dir.keyward().args(["unlock", "--slot", "peers-2", "--out", "k3.bin"]).run();
    out.assert_exit_code(4).assert_one_line_error();
    assert!(!dir.path("k3.bin").exists());
}

#[test]
fn no_peer_holds_the_key_the_ticket_or_a_plain_share() {
    let dir = Dir::new("peers-c6");
    let mut peers = five_peers(&dir);
    release_ticket(&dir, "op.key", "t.txt");
    dir.ok(recover_args(&dir, &peers, "t.txt", "k.bin"));
    dir.ok(["unlock", "--slot", "peers-2", "--out", "k2.bin"]);
    dir.ok(["peers", "status"]);
    for peer in &mut peers {
        peer.kill();
    }
    let ticket = String::from_utf8(dir.read("t.txt")).expect("text").trim().to_string();
    let hex: String = CANARY_KEY.iter().map(|b| format!("{b:02x}")).collect();
    let b64 = keyward_core::encoding::to_base64(CANARY_KEY);
    for peer in &peers {
        let mut places =
            vec![(format!("{}.log", peer.data), dir.read(&format!("{}.log", peer.data)))];
        for entry in std::fs::read_dir(dir.path(&peer.data)).expect("folder").flatten() {
            let name = format!("{}/{}", peer.data, entry.file_name().to_string_lossy());
            places.push((name, std::fs::read(entry.path()).unwrap_or_default()));
        }
        for (place, bytes) in &places {
            let text = String::from_utf8_lossy(bytes);
            for (what, canary) in [("key hex", &hex), ("key base64", &b64), ("ticket", &ticket)] {
                assert!(!text.contains(canary.as_str()), "the {what} appears in {place}");
            }
            assert!(
                !bytes.windows(CANARY_KEY.len()).any(|w| w == CANARY_KEY),
                "the raw key appears in {place}"
            );
        }
    }
}

#[test]
fn a_ticket_not_signed_by_a_peer_operator_is_refused_with_the_reason() {
    let dir = Dir::new("peers-badticket");
    let peers = five_peers(&dir);
    dir.ok(["operator", "keygen", "--out", "stranger.key"]);
    release_ticket(&dir, "stranger.key", "t.txt");
    let out = dir.keyward().args(recover_args(&dir, &peers, "t.txt", "k.bin")).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("not authenticated"), "{}", out.report());
    assert!(!dir.path("k.bin").exists());
    // A good ticket is of no use to a machine without the requester key it names.
    release_ticket(&dir, "op.key", "t2.txt");
    dir.ok(["operator", "keygen", "--out", "other.key"]);
    let mut args = recover_args(&dir, &peers, "t2.txt", "k.bin");
    let at = args.iter().position(|a| a == "requester.key").expect("arg");
    args[at] = "other.key".into();
    dir.keyward().args(args).run().assert_exit_code(2).assert_one_line_error();
    assert!(!dir.path("k.bin").exists());
}

#[test]
fn the_both_policy_needs_the_box_and_a_ticket_naming_it() {
    let dir = Dir::new("peers-both");
    let _peers = five_peers_with(&dir, "both");
    let out = dir.keyward().args(["unlock", "--slot", "peers-2", "--out", "k.bin"]).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("--release-ticket"), "{}", out.report());
    // The operator names the box's own identity (as `enroll peers` printed it).
    let enrolled: serde_json::Value =
        serde_json::from_slice(&dir.read("enroll.json")).expect("json");
    let box_identity = enrolled["identity"].as_str().expect("identity").to_string();
    dir.ok([
        "operator",
        "approve-release",
        "--box",
        "pve-07",
        "--key",
        "op.key",
        "--requester",
        &box_identity,
        "--out",
        "t.txt",
    ]);
    dir.ok(["unlock", "--slot", "peers-2", "--release-ticket", "t.txt", "--out", "k.bin"]);
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
}

#[test]
fn the_tpm_quote_policy_releases_to_the_box_in_its_measured_state_only() {
    let dir = Dir::new("peers-tpm-quote");
    let tpm = keyward_tpm2::testing::Swtpm::start();
    let tcti = tpm.tcti();
    let _peers = five_peers_enrolled(&dir, "tpm-quote", &["--tpm2-device", &tcti, "--pcrs", "7"]);
    let unlock = |out: &str| {
        dir.keyward()
            .env("KEYWARD_TPM2_DEVICE", &tcti)
            .args(["unlock", "--slot", "peers-2", "--out", out])
            .run()
    };
    // After a restart, the box quotes with its TPM for each peer's nonce.
    unlock("k.bin").assert_success();
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
    // After a boot change, every peer refuses, saying why.
    tpm.extend(7);
    let refused = unlock("k2.bin");
    refused.assert_exit_code(9).assert_one_line_error();
    assert!(refused.stderr().contains("PCR values"), "{}", refused.report());
    assert!(!dir.path("k2.bin").exists());
    // Another TPM at that address is refused too.
    let port = tpm.port();
    drop(tpm);
    let _other = keyward_tpm2::testing::Swtpm::start_on(port);
    let foreign = unlock("k3.bin");
    foreign.assert_exit_code(9).assert_one_line_error();
    assert!(foreign.stderr().contains("not signed by the TPM enrolled"), "{}", foreign.report());
    // A re-share of such a slot is refused before anything is sent.
    let reshare = dir.keyward().args(["peers", "reshare"]).run();
    reshare.assert_exit_code(2).assert_one_line_error();
}

/// The share sets a peer's database holds.
fn sets_at(dir: &Dir, peer: &PeerProcess) -> Vec<String> {
    let url = format!("sqlite://{}?mode=ro", dir.path(&format!("{}/peer.db", peer.data)).display());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.expect("peer database");
        let rows =
            sqlx::query("SELECT share_set FROM shares").fetch_all(&pool).await.expect("rows");
        pool.close().await;
        rows.iter().map(|r| r.get::<String, _>(0)).collect()
    })
}

fn current_set(dir: &Dir) -> String {
    let list = dir.ok(["list", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&list.stdout()).expect("json");
    let slots = value["slots"].as_array().expect("slots");
    let peers = slots.iter().find(|s| s["kind"] == "peers").expect("a peers slot");
    let protection = peers["protection"].as_str().expect("protection");
    // "3-of-5 peers, share set 1234abcd, release: either": the first 8 digits.
    protection.split("share set ").nth(1).expect("set").chars().take(8).collect()
}

#[test]
fn a_peer_admits_a_box_only_with_a_token_and_a_failed_enroll_leaves_no_identity() {
    let dir = Dir::new("peers-admit");
    let operator = dir.ok(["operator", "keygen", "--out", "op.key"]).stdout().trim().to_string();
    let peers: Vec<PeerProcess> =
        (1..=2).map(|i| PeerProcess::start(&dir, &format!("peer{i}"), &operator)).collect();
    dir.init_plain_canary();
    let mut enroll: Vec<String> =
        ["enroll", "peers", "--threshold", "2", "--box", "pve-07"].map(String::from).to_vec();
    for peer in &peers {
        enroll.extend(["--peer".to_string(), peer.card()]);
    }
    let out = dir.keyward().args(&enroll).run();
    out.assert_exit_code(9).assert_one_line_error();
    assert!(out.stderr().contains("not admitted"), "says why{}", out.report());
    assert!(!dir.path("keybox.json.box-key").exists(), "no identity left behind{}", out.report());
    let list = dir.ok(["list", "--json"]);
    let value: serde_json::Value = serde_json::from_str(&list.stdout()).expect("json");
    assert_eq!(value["slots"].as_array().map(Vec::len), Some(1), "no slot added{}", list.report());
    // With a token, it goes through.
    dir.enrollment_token();
    enroll.extend(["--token-file".to_string(), "token.txt".to_string()]);
    dir.ok(&enroll);
}

#[test]
fn a_reshare_that_cannot_delete_old_shares_says_so_and_a_later_command_finishes_it() {
    let dir = Dir::new("peers-cleanup");
    let mut peers = five_peers(&dir);
    let old = current_set(&dir);
    // peer5 is down while it is removed: its old share cannot be deleted now.
    peers[4].kill();
    // (Authorised by the plain slot: the peers slot would ask peer5 too, and warn it is down.)
    let reshare = ["peers", "reshare", "--unlock-slot", "1", "--remove", &peers[4].card()];
    let out = dir.keyward().args(reshare).run();
    out.assert_exit_code(8).assert_one_line_error();
    assert!(out.stderr().contains(&peers[4].url), "names the peer{}", out.report());
    let new = current_set(&dir);
    assert_ne!(new, old, "the re-share itself is committed");
    // `peers status` lists what is pending, and once peer5 is back deletes it there.
    let status = dir.keyward().args(["peers", "status"]).run();
    status.assert_exit_code(8);
    assert!(status.stdout().contains("still at"), "{}", status.report());
    assert!(sets_at(&dir, &peers[4]).iter().any(|s| s.starts_with(&old)), "peer5 still holds it");
    peers[4].serve(&dir);
    dir.ok(["peers", "status"]);
    assert!(sets_at(&dir, &peers[4]).is_empty(), "the old share is gone from peer5");
    for peer in &peers[..4] {
        assert!(sets_at(&dir, peer).iter().all(|s| !s.starts_with(&old)), "{}", peer.url);
    }
    assert!(!dir.path("keybox.json.peers-pending.json").exists(), "nothing is left pending");
}

#[test]
fn shares_of_a_crashed_enroll_and_of_a_removed_slot_are_found_and_removed() {
    let dir = Dir::new("peers-orphans");
    let peers = five_peers(&dir);
    let before = dir.read("keybox.json");
    // A second split whose commit "never happened": the keybox is put back as it was, and the
    // journal holds what `enroll peers` noted before placing the shares, as old as a crash.
    let mut enroll: Vec<String> =
        ["enroll", "peers", "--threshold", "2", "--label", "second", "--box", "pve-07"]
            .map(String::from)
            .to_vec();
    for peer in &peers[..3] {
        enroll.extend(["--peer".to_string(), peer.card()]);
    }
    enroll.push("--json".into());
    let second: serde_json::Value = serde_json::from_str(&dir.ok(&enroll).stdout()).expect("json");
    let orphan = second["share_set"].as_str().expect("set").to_string();
    dir.write("keybox.json", &before);
    let card = |p: &PeerProcess| PeerCard::parse(&dir.read(&p.card())).expect("card").to_record();
    let journal = serde_json::json!({
        "format": "keyward-peers-pending",
        "version": 1,
        "sets": [{
            "share_set": orphan,
            "peers": peers[..3].iter().map(card).collect::<Vec<_>>(),
            "since": keyward_service::unix_now() - 3600,
            "disposal": { "state": "placing" },
        }],
    });
    dir.write("keybox.json.peers-pending.json", journal.to_string().as_bytes());
    assert!(sets_at(&dir, &peers[0]).contains(&orphan));
    dir.ok(["peers", "status"]);
    for peer in &peers[..3] {
        assert!(!sets_at(&dir, peer).contains(&orphan), "the orphan is gone from {}", peer.url);
    }
    // Removing a peers slot deletes its shares at its peers too.
    let current = current_set(&dir);
    dir.write("code.bin", b"0123456789abcdef0123456789abcdef");
    dir.ok(["enroll", "keyfile", "--keyfile", "code.bin"]);
    dir.ok(["remove", "peers-2"]);
    for peer in &peers {
        assert!(sets_at(&dir, peer).iter().all(|s| !s.starts_with(&current)), "{}", peer.url);
    }
}

#[test]
fn a_peer_keeps_its_keys_locked_and_its_database_private() {
    let dir = Dir::new("peers-locked");
    let peers = five_peers(&dir);
    let pid = peers[0].child.as_ref().expect("running").id();
    let locked = util::locked_undumpable_kib(pid);
    assert!(
        locked >= 8,
        "the sealing key and the TLS key, a page each, are locked and not dumped ({locked} KiB)"
    );
    for file in ["peer.db", "peer.db-wal", "peer.db-shm"] {
        assert_eq!(dir.mode(&format!("peer1/{file}")), 0o600, "peer1/{file}\n{}", dir.listing());
    }
}

/// Issue 23.1: a replacement machine takes the box name over at the peers with an operator's
/// takeover naming its identity. Each peer moves the name once; the old machine gets nothing on
/// its own word any more; the sets it placed stay (released by ticket) until re-shared, and the
/// new machine places its own under the same name.
#[test]
fn a_replacement_machine_takes_the_owner_name_over_at_the_peers() {
    let dir = Dir::new("peers-takeover");
    let peers = five_peers(&dir);
    let old_set = current_set(&dir);

    // The fresh machine: the key back with a release ticket, then a keybox of its own.
    release_ticket(&dir, "op.key", "t.txt");
    let mut args = vec!["--keybox".to_string(), "fresh/keybox.json".into()];
    args.extend(recover_args(&dir, &peers, "t.txt", "fresh.bin"));
    dir.ok(args);
    let fresh = |args: &[&str]| -> Vec<String> {
        let mut all = vec!["--keybox".to_string(), "fresh/keybox.json".into()];
        all.extend(args.iter().map(|a| a.to_string()));
        all
    };
    dir.ok(fresh(&["init", "--with", "plain", "--import", "fresh.bin"]));
    let identity = dir.ok(fresh(&["escrow", "identity"])).stdout().trim().to_string();
    // The peers only: the operator names the identity the takeover replaces.
    let old = dir.ok(["escrow", "identity"]).stdout().trim().to_string();
    dir.takeover(&identity, "takeover.txt", &["--replacing".into(), old]);
    let mut enroll = fresh(&[
        "enroll",
        "peers",
        "--threshold",
        "3",
        "--box",
        "pve-07",
        "--takeover-file",
        "takeover.txt",
    ]);
    for peer in &peers {
        enroll.extend(["--peer".to_string(), peer.card()]);
    }
    // A takeover for another name is refused before anything is opened or sent.
    let mut other_name = enroll.clone();
    other_name[7] = "pve-08".into();
    let out = dir.keyward().args(&other_name).run();
    out.assert_exit_code(2).assert_one_line_error();
    assert!(out.stderr().contains("is for pve-07"), "{}", out.report());
    dir.ok(&enroll);

    // The old machine's own word opens nothing now.
    let old = dir.keyward().args(["unlock", "--slot", "peers-2", "--out", "old.bin"]).run();
    old.assert_exit_code(9).assert_one_line_error();
    assert!(old.stderr().contains("replacement machine"), "{}", old.report());
    assert!(!dir.path("old.bin").exists());
    // Every peer holds the old set and the new one; the new machine opens through its own.
    for peer in &peers {
        let sets = sets_at(&dir, peer);
        assert_eq!(sets.len(), 2, "{sets:?}");
        assert!(sets.iter().any(|s| s.starts_with(&old_set)), "{sets:?}");
    }
    dir.ok(fresh(&["unlock", "--slot", "peers-2", "--out", "new.bin"]));
    assert_eq!(dir.read("new.bin"), CANARY_KEY);
    // A release ticket still gets the key back (from the old set or the new one).
    release_ticket(&dir, "op.key", "t2.txt");
    let mut args = vec!["--keybox".to_string(), "none/keybox.json".into()];
    args.extend(recover_args(&dir, &peers, "t2.txt", "again.bin"));
    dir.ok(args);
    assert_eq!(dir.read("again.bin"), CANARY_KEY);
    // The name is this machine's now: a later slot under it needs no statement at all.
    let mut again =
        fresh(&["enroll", "peers", "--threshold", "2", "--box", "pve-07", "--label", "second"]);
    again.extend(["--peer".to_string(), peers[0].card(), "--peer".to_string(), peers[1].card()]);
    dir.ok(&again);
}

/// Issue 23.2: a release ticket carries the peers' cards inside what the operator signs, so a
/// fresh machine runs `recover --ticket-file` with its requester key and nothing else. What
/// needs neither a secret nor the network is refused first: a box that is not the ticket's, a
/// fresh keybox (a release ticket's key comes with no code to keep it under).
#[test]
fn a_release_ticket_carries_the_peers_and_the_fresh_machine_needs_nothing_else() {
    let dir = Dir::new("peers-ticket-cards");
    let peers = five_peers(&dir);
    release_ticket(&dir, "op.key", "unused.txt");
    let requester = String::from_utf8(dir.read("requester.pub")).expect("text");
    let mut approve: Vec<String> = [
        "operator",
        "approve-release",
        "--box",
        "pve-07",
        "--key",
        "op.key",
        "--requester",
        &requester,
        "--out",
        "t.txt",
    ]
    .map(String::from)
    .to_vec();
    for peer in &peers {
        approve.extend(["--peer".to_string(), peer.card()]);
    }
    dir.ok(approve);
    let fp = fingerprint_of(&dir);
    let recover = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--keybox",
            "none/keybox.json",
            "recover",
            "--ticket-file",
            "t.txt",
            "--requester-key",
            "requester.key",
            "--expect-fingerprint",
            &fp,
        ]
        .map(String::from)
        .to_vec();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let other_box = dir.keyward().args(recover(&["--box", "pve-08", "--out", "x.bin"])).run();
    other_box.assert_exit_code(2).assert_one_line_error();
    assert!(other_box.stderr().contains("for pve-07, not pve-08"), "{}", other_box.report());
    let keybox = dir.keyward().args(recover(&["--into-keybox", "fresh.json"])).run();
    keybox.assert_exit_code(2).assert_one_line_error();
    assert!(!dir.path("x.bin").exists() && !dir.path("fresh.json").exists());
    dir.ok(recover(&["--out", "k.bin"]));
    assert_eq!(dir.read("k.bin"), CANARY_KEY);
}

/// Issue 24.1: the drill proves the peers slot (a threshold releases shares that rebuild the
/// key, and every peer still holds its share), and the peers count it as a drill, apart from a
/// use of the key (an unlock through them); `verify` is a drill to them too. The drill names
/// the slot broken when one peer's share is gone, naming that peer.
#[test]
fn a_drill_proves_the_peers_and_names_a_peer_whose_share_is_gone() {
    let dir = Dir::new("peers-drill");
    let peers = five_peers(&dir);
    // An offline fallback too: the plain slot and the peers are not one.
    dir.ok(["enroll", "keyfile", "--keyfile", "slot.key"]);
    let out = dir.keyward().args(["drill"]).run();
    out.assert_success();
    assert!(out.stdout().contains("all 5 peers hold the current set"), "{}", out.report());
    // Each peer counts the release after it answered: ask until every one has, a few times.
    let counted = |drills: u64, releases: u64| {
        let mut last = serde_json::Value::Null;
        for _ in 0..40 {
            let out = dir.ok(["peers", "status", "--json"]);
            last = serde_json::from_str(&out.stdout()).expect("json");
            let peers = last["peers"].as_array().expect("peers");
            if peers.len() == 5
                && peers.iter().all(|p| p["drills"] == drills && p["releases"] == releases)
            {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the peers did not count {drills} drill(s) and {releases} use(s): {last}");
    };
    let status = counted(1, 0);
    assert!(status["peers"][0]["last_drilled"].is_i64(), "{status}");
    assert!(status["peers"][0]["last_released"].is_null(), "a drill is not a use: {status}");
    dir.ok(["unlock", "--slot", "peers-2", "--out", "k.bin"]);
    counted(1, 1);
    dir.ok(["verify", "--slot", "peers-2"]);
    counted(2, 1);
    // One peer's share deleted behind the box's back.
    let url =
        format!("sqlite://{}?mode=rw", dir.path(&format!("{}/peer.db", peers[2].data)).display());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&url).await.expect("peer database");
        sqlx::query("DELETE FROM shares").execute(&pool).await.expect("delete");
        pool.close().await;
    });
    let out = dir.keyward().args(["drill"]).run();
    out.assert_exit_code(11);
    assert!(out.stdout().contains("4 of 5 peers hold the current set"), "{}", out.report());
    assert!(out.stdout().contains(&peers[2].url), "names the peer: {}", out.report());
    // verify of the slot says the same: it opens, and a path behind it is broken.
    let out = dir.keyward().args(["verify", "--slot", "peers-2"]).run();
    out.assert_exit_code(11);
    assert!(out.stdout().contains("4 of 5 peers hold the current set"), "{}", out.report());
    assert!(!out.stdout().contains("header MAC: not checked"), "it opened: {}", out.report());
}
