//! SQL for PostgreSQL. Timestamps are returned as RFC 3339 text in UTC, like SQLite's.

use super::CampaignRow;
use sqlx::PgPool;

/// `created_at` as RFC 3339 text in UTC.
macro_rules! created_at {
    () => {
        r#"to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')"#
    };
}

const INSERT_CAMPAIGN: &str = concat!(
    "insert into campaigns (name, spec) values ($1, $2::jsonb) returning id, ",
    created_at!()
);

pub(super) async fn insert_campaign(
    pool: &PgPool,
    name: &str,
    spec: &str,
) -> sqlx::Result<(i64, String)> {
    sqlx::query_as(INSERT_CAMPAIGN)
        .bind(name)
        .bind(spec)
        .fetch_one(pool)
        .await
}

const CAMPAIGN: &str = concat!(
    "select id, spec::text as spec, ",
    created_at!(),
    " as created_at from campaigns where id = $1"
);

pub(super) async fn campaign(pool: &PgPool, id: i64) -> sqlx::Result<Option<CampaignRow>> {
    sqlx::query_as(CAMPAIGN).bind(id).fetch_optional(pool).await
}

const CAMPAIGNS: &str = concat!(
    "select id, spec::text as spec, ",
    created_at!(),
    " as created_at from campaigns order by id limit $1 offset $2"
);

pub(super) async fn campaigns(
    pool: &PgPool,
    limit: i64,
    offset: i64,
) -> sqlx::Result<Vec<CampaignRow>> {
    sqlx::query_as(CAMPAIGNS)
        .bind(limit)
        .bind(offset)
        .fetch_all(pool)
        .await
}
