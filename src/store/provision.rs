//! Creating and dropping whole PostgreSQL databases: what the test and benchmark kit needs to
//! give each run a database of its own. Kept here so that no SQL lives outside the store.

use crate::error::Error;
use sqlx::postgres::PgPool;

/// A database name the statements below may splice in: ASCII letters, digits and `_`, not
/// starting with a digit, at most 63 bytes (PostgreSQL's identifier limit).
fn check_name(name: &str) -> Result<(), Error> {
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    let starts_well = name.bytes().next().is_some_and(|b| !b.is_ascii_digit());
    if plain && starts_well && name.len() <= 63 {
        Ok(())
    } else {
        Err(Error::invalid(
            "database",
            format!("{name:?} is not a plain identifier (letters, digits, _)"),
        ))
    }
}

/// `create database NAME` on the server that `admin_url` reaches; returns the URL of the new
/// database (`admin_url` with its database name replaced, query string kept).
pub async fn create_postgres_database(admin_url: &str, name: &str) -> Result<String, Error> {
    check_name(name)?;
    let pool = PgPool::connect(admin_url).await?;
    let created = sqlx::query(&format!("create database {name}"))
        .execute(&pool)
        .await;
    pool.close().await;
    created?;
    Ok(with_database(admin_url, name))
}

/// `drop database if exists NAME with (force)`: `with (force)` ends the connections that a
/// slow shutdown may have left behind.
pub async fn drop_postgres_database(admin_url: &str, name: &str) -> Result<(), Error> {
    check_name(name)?;
    let pool = PgPool::connect(admin_url).await?;
    let dropped = sqlx::query(&format!("drop database if exists {name} with (force)"))
        .execute(&pool)
        .await;
    pool.close().await;
    dropped?;
    Ok(())
}

/// `url` with its database name replaced by `name`, query string kept.
pub fn with_database(url: &str, name: &str) -> String {
    let (main, query) = match url.split_once('?') {
        Some((main, query)) => (main, Some(query)),
        None => (url, None),
    };
    let authority_start = main.find("://").map_or(0, |i| i + 3);
    let base = match main[authority_start..].find('/') {
        Some(slash) => &main[..authority_start + slash],
        None => main,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "b"),
            "postgres://u:p@h/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "b"),
            "postgres://h:5432/b"
        );
    }

    #[test]
    fn check_name_refuses_anything_but_a_plain_identifier() {
        assert!(check_name("flowlab_test_1").is_ok());
        for bad in ["", "1abc", "a;drop", "a b", "Ä", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}
