//! Queue claims on PostgreSQL pass over rows another instance is claiming (`FOR UPDATE …
//! SKIP LOCKED`): while one claimer's transaction holds its batch, a second claimer gets the
//! next batch at once instead of waiting on the same rows and coming away empty. SQLite has one
//! writer, so there claims cannot overlap and the test does not apply.

use std::collections::BTreeSet;
use std::time::Duration;

use guestbridge::store::{outbox, sync_outbox};
use sqlx::Connection;

use crate::helpers::{self, Backend};

const ROWS: i64 = 20;
const BATCH: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claimer_takes_the_next_sync_events_while_the_first_holds_its_own() {
    if helpers::postgres_url().is_none() {
        eprintln!(
            "SKIPPED: GUESTBRIDGE_TEST_POSTGRES_URL is not set (claims overlap only on PostgreSQL)"
        );
        return;
    }
    let app = helpers::spawn(Backend::Postgres).await;
    let pool = app.deps.db.pool();
    let mut setup = pool.acquire().await.unwrap();
    for i in 0..ROWS {
        sqlx::query(
            "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at)
             VALUES ($1, 'downstream', $2, 'upsert', '{}', 0, 0)",
        )
        .bind(format!("ev{i}"))
        .bind(format!("guest{i}"))
        .execute(&mut *setup)
        .await
        .unwrap();
    }
    let now = 1_000;
    let mut first = pool.acquire().await.unwrap();
    let mut held = first.begin().await.unwrap();
    let a = sync_outbox::claim_due(&mut held, "a", now, now + 60_000, BATCH)
        .await
        .unwrap();
    let mut second = pool.acquire().await.unwrap();
    let b = tokio::time::timeout(
        Duration::from_secs(3),
        sync_outbox::claim_due(&mut second, "b", now, now + 60_000, BATCH),
    )
    .await
    .expect("the second claimer waited on the first one's rows")
    .unwrap();
    held.commit().await.unwrap();
    let a: BTreeSet<String> = a.into_iter().map(|e| e.id).collect();
    let b: BTreeSet<String> = b.into_iter().map(|e| e.id).collect();
    assert_eq!(a.len() as i64, BATCH);
    assert_eq!(
        b.len() as i64,
        BATCH,
        "the second claimer came away with {b:?}"
    );
    assert!(a.is_disjoint(&b), "both claimed {:?}", a.intersection(&b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_sender_takes_the_next_mails_while_the_first_holds_its_own() {
    if helpers::postgres_url().is_none() {
        eprintln!(
            "SKIPPED: GUESTBRIDGE_TEST_POSTGRES_URL is not set (claims overlap only on PostgreSQL)"
        );
        return;
    }
    let app = helpers::spawn(Backend::Postgres).await;
    let pool = app.deps.db.pool();
    let mut setup = pool.acquire().await.unwrap();
    for i in 0..ROWS {
        sqlx::query(
            "INSERT INTO mail_outbox (id, kind, to_addr, subject, idempotency_key, created_at, next_attempt_at)
             VALUES ($1, 'invitation', 'recipient-without-address', 'Invitation', $1, 0, $2)",
        )
        .bind(format!("mail{i}"))
        .bind(i)
        .execute(&mut *setup)
        .await
        .unwrap();
    }
    let now = 1_000;
    let mut first = pool.acquire().await.unwrap();
    let mut held = first.begin().await.unwrap();
    let a = outbox::claim_due(&mut held, "a", now, now + 60_000, BATCH)
        .await
        .unwrap();
    let mut second = pool.acquire().await.unwrap();
    let b = tokio::time::timeout(
        Duration::from_secs(3),
        outbox::claim_due(&mut second, "b", now, now + 60_000, BATCH),
    )
    .await
    .expect("the second sender waited on the first one's rows")
    .unwrap();
    held.commit().await.unwrap();
    let a: BTreeSet<String> = a.into_iter().map(|m| m.id).collect();
    let b: BTreeSet<String> = b.into_iter().map(|m| m.id).collect();
    assert_eq!(a.len() as i64, BATCH);
    assert_eq!(
        b.len() as i64,
        BATCH,
        "the second sender came away with {b:?}"
    );
    assert!(a.is_disjoint(&b), "both claimed {:?}", a.intersection(&b));
}
