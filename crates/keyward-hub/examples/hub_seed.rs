//! Fills a hub database with N enrolled boxes, each with one active escrow, for benchmarks
//! (docs/BENCHMARKS.md). Usage: hub_seed DATABASE_URL N
//! The boxes are `bench-0` … `bench-(N-1)` with deterministic identities (bench_identity.rs), so
//! the load generator can sign as any of them.

#[path = "common/bench_identity.rs"]
mod bench_identity;

use std::time::Instant;

use keyward_hub::store::Store;
use sqlx::Executor;

const BATCH: u64 = 500;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(count)) = (args.first(), args.get(1).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: hub_seed DATABASE_URL N");
        std::process::exit(2);
    };
    let store = Store::connect(url).await?;
    let pool = store.pool();
    let started = Instant::now();
    // A blob of a realistic size (a keyward escrow blob is ~700 bytes of base64).
    let blob = keyward_core::encoding::to_base64(&[7u8; 520]);
    let fingerprint =
        keyward_core::Fingerprint::of(b"keyward benchmark key, 32 bytes!").to_string();
    let mut next = 0;
    while next < count {
        let end = (next + BATCH).min(count);
        let mut boxes = String::from("INSERT INTO boxes (name, public_key, enrolled_at) VALUES ");
        let mut escrows = String::from(
            "INSERT INTO escrows (box_name, version, state, blob_format, blob, fingerprint, directive, pushed_at) VALUES ",
        );
        for i in next..end {
            let sep = if i == next { "" } else { "," };
            let name = bench_identity::box_name(i);
            let key = bench_identity::box_identity(i).public();
            boxes.push_str(&format!("{sep}('{name}', '{key}', 0)"));
            escrows.push_str(&format!(
                "{sep}('{name}', 1, 'active', 'keyward-escrow-blob', '{blob}', '{fingerprint}', '{{}}', 0)"
            ));
        }
        let mut tx = pool.begin().await?;
        tx.execute(sqlx::AssertSqlSafe(boxes)).await?;
        tx.execute(sqlx::AssertSqlSafe(escrows)).await?;
        tx.commit().await?;
        next = end;
        if next % 100_000 == 0 {
            eprintln!("{next} boxes, {:.0} s", started.elapsed().as_secs_f64());
        }
    }
    eprintln!("seeded {count} boxes in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}
