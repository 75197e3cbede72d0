//! Training data, checkpoints, training runs and leases (the trainer's storage).

use super::Store;
use crate::error::Error;

const SUCCESSFUL_LABELS: &str =
    "select coalesce(sum(n_success), 0) from candidates where campaign_id = $1";

impl Store {
    /// Number of successful observations stored for the campaign.
    pub async fn successful_label_count(&self, campaign_id: i64) -> Result<i64, Error> {
        let (n,): (i64,) = match self {
            Store::Sqlite(pool) => {
                sqlx::query_as(SUCCESSFUL_LABELS)
                    .bind(campaign_id)
                    .fetch_one(pool)
                    .await?
            }
            Store::Postgres(pool) => {
                let sql = "select coalesce(sum(n_success), 0)::bigint from candidates where campaign_id = $1";
                sqlx::query_as(sql)
                    .bind(campaign_id)
                    .fetch_one(pool)
                    .await?
            }
        };
        Ok(n)
    }
}
