//! The integration suite: the real application over real HTTP, every test on SQLite and on
//! PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test

mod auth;
mod campaigns;
mod csv;
mod deployment;
mod durability;
mod health;
mod helpers;
mod labels;
mod logs;
mod model;
mod rounds;
