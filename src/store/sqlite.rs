//! SQL for SQLite.

use super::CampaignRow;
use sqlx::SqlitePool;

const INSERT_CAMPAIGN: &str =
    "insert into campaigns (name, spec) values ($1, $2) returning id, created_at";

pub(super) async fn insert_campaign(
    pool: &SqlitePool,
    name: &str,
    spec: &str,
) -> sqlx::Result<(i64, String)> {
    sqlx::query_as(INSERT_CAMPAIGN)
        .bind(name)
        .bind(spec)
        .fetch_one(pool)
        .await
}

const CAMPAIGN: &str = "select id, spec, created_at from campaigns where id = $1";

pub(super) async fn campaign(pool: &SqlitePool, id: i64) -> sqlx::Result<Option<CampaignRow>> {
    sqlx::query_as(CAMPAIGN).bind(id).fetch_optional(pool).await
}

const CAMPAIGNS: &str = "select id, spec, created_at from campaigns order by id limit ?1 offset ?2";

pub(super) async fn campaigns(
    pool: &SqlitePool,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<CampaignRow>> {
    sqlx::query_as(CAMPAIGNS)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
}
