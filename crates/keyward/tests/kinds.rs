//! The slot seam from outside: a keybox that a newer keyward wrote, holding a slot of a kind this
//! keyward does not know. The test process registers that kind (as a newer build would have it)
//! to write the keybox; the `keyward` binary under test does not know it.

mod util;

use std::path::Path;

use keyward_core::kdf::{KEK_LEN, KdfParams, Kek};
use keyward_core::keybox::{NewKeybox, format};
use keyward_core::operations::{self, Authorization};
use keyward_core::slot::{
    Channel, NewPassphrase, NewSlot, OpenContext, SealContext, Slot, SlotError, SlotKind,
    SlotParams, Unlocker, registry,
};
use keyward_core::store::RealFs;
use keyward_core::{DataKey, IntegrityFailure, Keybox, Passphrase, Store};
use serde_json::{Value, json};
use util::{CANARY_KEY, CANARY_PASSPHRASE, Dir};
use zeroize::Zeroizing;

/// A kind from the future: it stores its KEK (like `plain`) under a name no release knows.
#[derive(Debug)]
struct FutureKind;

const FUTURE: &str = "future-test";

#[derive(Debug)]
struct FutureSlot(Vec<u8>);

impl SlotKind for FutureKind {
    fn name(&self) -> &'static str {
        FUTURE
    }
    fn about(&self) -> &'static str {
        "a kind from a newer keyward"
    }
    fn read(&self, params: &Value) -> Result<Box<dyn Slot>, IntegrityFailure> {
        match serde_json::from_value::<Vec<u8>>(params["kek"].clone()) {
            Ok(kek) if kek.len() == KEK_LEN => Ok(Box::new(FutureSlot(kek))),
            _ => Err(IntegrityFailure::Inconsistent("future-test params".into())),
        }
    }
}

impl Slot for FutureSlot {
    fn channel(&self) -> Channel {
        Channel::Nothing
    }
    fn describe(&self) -> String {
        "from the future".into()
    }
    fn open(&self, ctx: &mut OpenContext<'_>) -> Result<Option<Kek>, SlotError> {
        match ctx.want(Channel::Nothing, None)? {
            Some(Unlocker::Unattended) => {
                let bytes: [u8; KEK_LEN] = self.0.as_slice().try_into().expect("length checked");
                Ok(Some(Zeroizing::new(bytes)))
            }
            _ => Ok(None),
        }
    }
}

#[derive(Debug)]
struct NewFuture;

impl NewSlot for NewFuture {
    fn kind(&self) -> &'static str {
        FUTURE
    }
    fn seal(&self, _at: &SealContext) -> Result<(SlotParams, Kek), SlotError> {
        let kek = [7u8; KEK_LEN];
        // Fields in an order no serde struct of keyward's would choose, and a nested object:
        // what must survive a rewrite byte for byte.
        let params =
            json!({ "zeta": { "b": 2, "a": [1, "x"] }, "kek": kek.to_vec(), "alpha": null });
        Ok((SlotParams { kind: FUTURE.into(), params }, Zeroizing::new(kek)))
    }
    fn unlocker(&self) -> Unlocker<'_> {
        Unlocker::Unattended
    }
}

/// A keybox with a passphrase slot (1) and a slot of the future kind (2), as a newer keyward
/// writes it.
fn newer_keybox(dir: &Dir) {
    registry::register(&[&FutureKind]).expect("one list of kinds in this test process");
    let store = Store::new(&RealFs, dir.keybox());
    let passphrase = Passphrase::new(Zeroizing::new(CANARY_PASSPHRASE.as_bytes().to_vec()));
    let first = NewPassphrase { passphrase, kdf: KdfParams::argon2id(64, 1, 1).expect("kdf") };
    let key = DataKey::import(Zeroizing::new(CANARY_KEY.to_vec())).expect("key");
    operations::init(&store, NewKeybox::new(key, "newer", Some("pass")), &first).expect("init");
    let auth = Authorization::Secret { unlocker: first.unlocker(), slot: None };
    operations::enroll(&store, &auth, Some("future"), &NewFuture).expect("enroll future");
    dir.write("pass.txt", CANARY_PASSPHRASE.as_bytes());
}

/// The future slot's `protection`, exactly as the file spells it.
fn future_protection_text(bytes: &[u8]) -> String {
    let text = String::from_utf8(bytes.to_vec()).expect("utf-8");
    let start = text.find("\"kind\": \"future-test\"").expect("the future slot is in the file");
    let end = text[start..].find("\"wrapped_key\"").expect("its wrapped key follows") + start;
    text[start..end].to_string()
}

#[test]
fn an_older_keyward_lists_skips_and_keeps_a_slot_of_a_newer_kind() {
    let dir = Dir::new("newer-kind");
    newer_keybox(&dir);
    let before = dir.read("keybox.json");

    let list = dir.ok(["list"]).stdout();
    assert!(list.contains("unknown kind future-test (needs a newer keyward)"), "{list}");
    let json: Value = serde_json::from_str(&dir.ok(["list", "--json"]).stdout()).expect("json");
    assert_eq!(json["slots"][1]["kind"], FUTURE);
    assert_eq!(json["slots"][1]["known"], false);

    // Other slots still open; the unknown one is neither damage nor a way in.
    dir.ok(["unlock", "--passphrase-file", "pass.txt", "--out", "key.bin"]);
    assert_eq!(dir.read("key.bin"), CANARY_KEY);
    let named = dir.keyward().args(["unlock", "--slot", "future", "--out", "other.bin"]).run();
    named.assert_exit_code(8).assert_one_line_error();
    assert!(named.stderr().contains("newer keyward"), "{}", named.report());
    assert!(!dir.path("other.bin").exists());
    // Unattended, nothing opens (this build cannot open the one slot that needs nothing).
    dir.keyward().args(["unlock", "--out", "other.bin"]).run().assert_exit_code(2);
    assert_eq!(dir.read("keybox.json"), before, "reading changed nothing");

    // A change rewrites the file; the unknown slot comes through byte for byte.
    dir.ok(["enroll", "plain", "--unlock-passphrase-file", "pass.txt"]);
    let after = dir.read("keybox.json");
    assert_ne!(after, before);
    assert_eq!(future_protection_text(&after), future_protection_text(&before));
    let verify = dir.keyward().args(["verify"]).run();
    verify.assert_success();
    assert!(verify.stdout().contains("needs a newer keyward"), "{}", verify.report());
}

#[test]
fn a_slot_of_a_newer_kind_is_covered_by_the_header_mac() {
    let dir = Dir::new("newer-kind-mac");
    newer_keybox(&dir);
    let keybox = Keybox::parse(&dir.read("keybox.json"), Path::new("k")).expect("parses");
    let file: Value = serde_json::from_slice(&keybox.to_bytes()).expect("json");
    let mac: [u8; 32] = keyward_core::encoding::from_base64(file["mac"].as_str().expect("mac"))
        .expect("base64")
        .try_into()
        .expect("32 bytes");
    // An edit by someone who can write the file (and recompute its checksum) but has no K.
    let mut header = keybox.header().clone();
    header.slots[1].protection.params["zeta"]["b"] = json!(3);
    dir.write("keybox.json", &format::encode(&header, &mac));
    let opened =
        dir.keyward().args(["unlock", "--passphrase-file", "pass.txt", "--out", "k.bin"]).run();
    opened.assert_exit_code(4).assert_one_line_error();
    assert!(opened.stderr().contains("header MAC"), "{}", opened.report());
    assert!(!dir.path("k.bin").exists());
}
