//! All SQL, one file per aggregate. Functions take the executor first, so the caller decides
//! what shares a transaction.

pub mod activity;
pub mod alert;
pub mod api_key;
pub mod enrichment;
pub mod indicator;
pub mod job;
pub mod mapping;
pub mod provider;
pub mod rule;
