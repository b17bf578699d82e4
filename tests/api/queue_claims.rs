//! Queue claims on PostgreSQL pass over rows another instance is claiming (`FOR UPDATE …
//! SKIP LOCKED`): while one claimer's transaction holds its batch, a second claimer gets the
//! next batch at once instead of waiting on the same rows and coming away empty. SQLite has one
//! writer, so there claims cannot overlap and the test does not apply.

use std::collections::BTreeSet;
use std::time::Duration;

use guestbridge::store::{mail_outbox, sync_outbox};
use sqlx::{AnyConnection, Connection};

use crate::helpers::{self, Backend};

const ROWS: i64 = 20;
const BATCH: i64 = 5;
const NOW: i64 = 1_000;

#[derive(Clone, Copy)]
enum Queue {
    Sync,
    Mail,
}

impl Queue {
    async fn fill(self, conn: &mut AnyConnection) {
        let sql = match self {
            Queue::Sync => {
                "INSERT INTO sync_outbox (id, target, guest_id, kind, payload, created_at, next_attempt_at)
                 VALUES ('ev' || $1, 'downstream', 'guest' || $1, 'upsert', '{}', 0, 0)"
            }
            Queue::Mail => {
                "INSERT INTO mail_outbox (id, kind, to_addr, subject, idempotency_key, created_at, next_attempt_at)
                 VALUES ('mail' || $1, 'invitation', 'recipient-without-address', 'Invitation', 'mail' || $1, 0, 0)"
            }
        };
        for i in 0..ROWS {
            sqlx::query(sql)
                .bind(i.to_string())
                .execute(&mut *conn)
                .await
                .unwrap();
        }
    }

    async fn claim(self, conn: &mut AnyConnection, owner: &str) -> BTreeSet<String> {
        let until = NOW + 60_000;
        match self {
            Queue::Sync => sync_outbox::claim_due(conn, owner, NOW, until, BATCH)
                .await
                .unwrap()
                .into_iter()
                .map(|e| e.id)
                .collect(),
            Queue::Mail => mail_outbox::claim_due(conn, owner, NOW, until, BATCH)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect(),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(gb_postgres),
    ignore = "claims overlap only on PostgreSQL: GUESTBRIDGE_TEST_POSTGRES_URL was not set"
)]
async fn a_second_claimer_takes_the_next_sync_events_while_the_first_holds_its_own() {
    second_claimer_takes_the_next_batch(Queue::Sync).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(gb_postgres),
    ignore = "claims overlap only on PostgreSQL: GUESTBRIDGE_TEST_POSTGRES_URL was not set"
)]
async fn a_second_sender_takes_the_next_mails_while_the_first_holds_its_own() {
    second_claimer_takes_the_next_batch(Queue::Mail).await
}

async fn second_claimer_takes_the_next_batch(queue: Queue) {
    helpers::require_postgres();
    let app = helpers::spawn(Backend::Postgres).await;
    let pool = app.deps.db.pool();
    queue.fill(&mut pool.acquire().await.unwrap()).await;
    let mut first = pool.acquire().await.unwrap();
    let mut held = first.begin().await.unwrap();
    let a = queue.claim(&mut held, "a").await;
    let mut second = pool.acquire().await.unwrap();
    let b = tokio::time::timeout(Duration::from_secs(3), queue.claim(&mut second, "b"))
        .await
        .expect("the second claimer waited on the first one's rows");
    held.commit().await.unwrap();
    assert_eq!(a.len() as i64, BATCH);
    assert_eq!(
        b.len() as i64,
        BATCH,
        "the second claimer came away with {b:?}"
    );
    assert!(a.is_disjoint(&b), "both claimed {:?}", a.intersection(&b));
}
