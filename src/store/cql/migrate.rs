//! `douyin-lite migrate`: creates the keyspace, then applies the versioned files of `cql/`
//! (built into the binary) once each, recording them in `schema_migrations`. Several
//! instances may run it at once: a lease row taken with a lightweight transaction lets one
//! apply while the others wait for it.

use super::session;
use crate::config::CqlConfig;
use scylla::client::session::Session;
use scylla::errors::{DbError, ExecutionError, RequestAttemptError};
use scylla::statement::unprepared::Statement;
use std::time::Duration;

/// The migrations, in order: (version, name, CQL text).
pub const MIGRATIONS: &[(i32, &str, &str)] =
    &[(1, "001_tables", include_str!("../../../cql/001_tables.cql"))];

/// The schema version this build needs (`serve` refuses an older keyspace).
pub const SCHEMA_VERSION: i32 = 1;

/// How long the migration lease lasts if its holder dies.
const LEASE_SECS: i32 = 120;

/// The statements of a migration file: comment lines dropped, split at `;` ending a line.
pub fn statements(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let l = line.trim_end();
        if l.trim_start().starts_with("--") || l.trim().is_empty() {
            continue;
        }
        cur.push_str(l);
        cur.push('\n');
        if l.ends_with(';') {
            out.push(cur.trim().trim_end_matches(';').to_string());
            cur.clear();
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// `CREATE TABLE IF NOT EXISTS t` of a migration file, made `... ks.t` (no session-wide
/// `USE`: it is ambiguous for prepared statements).
fn in_keyspace(statement: &str, ks: &str) -> String {
    const CREATE: &str = "CREATE TABLE IF NOT EXISTS ";
    match statement.strip_prefix(CREATE) {
        Some(rest) => format!("{CREATE}{ks}.{rest}"),
        None => statement.to_string(),
    }
}

/// The newest migration applied to keyspace `ks` (0 when none).
pub async fn applied_version(s: &Session, ks: &str) -> Result<i32, String> {
    match s
        .query_unpaged(format!("SELECT version FROM {ks}.schema_migrations"), ())
        .await
    {
        Ok(r) => {
            let rows = r.into_rows_result().map_err(|e| format!("cql: {e}"))?;
            let mut max = 0;
            for row in rows.rows::<(i32,)>().map_err(|e| format!("cql: {e}"))? {
                max = max.max(row.map_err(|e| format!("cql: {e}"))?.0);
            }
            Ok(max)
        }
        Err(e)
            if e.to_string().contains("unconfigured table")
                || e.to_string().contains("does not exist") =>
        {
            Ok(0)
        }
        Err(e) => Err(format!("cql: {e}")),
    }
}

/// Creates the keyspace and applies every migration not yet applied. Returns the names of
/// those this call applied.
pub async fn migrate(cfg: &CqlConfig) -> Result<Vec<String>, String> {
    super::check_keyspace_name(&cfg.keyspace)?;
    let s = session(cfg, false).await?;
    let replication = if cfg.replication.trim().is_empty() {
        format!(
            "{{'class': 'NetworkTopologyStrategy', '{}': {}}}",
            cfg.local_datacenter.replace('\'', ""),
            cfg.replication_factor.max(1)
        )
    } else {
        cfg.replication.clone()
    };
    let ks = &cfg.keyspace;
    run(
        &s,
        &format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
    )
    .await?;
    run(
        &s,
        &format!("CREATE TABLE IF NOT EXISTS {ks}.schema_migrations (version int PRIMARY KEY, name text, applied_ms bigint)"),
    )
    .await?;
    run(
        &s,
        &format!("CREATE TABLE IF NOT EXISTS {ks}.schema_lease (id int PRIMARY KEY, holder text)"),
    )
    .await?;
    let me = format!("{}-{:x}", std::process::id(), rand::random::<u64>());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(LEASE_SECS as u64 * 3);
    loop {
        if applied_version(&s, ks).await? >= SCHEMA_VERSION {
            return Ok(Vec::new());
        }
        let r = s
            .query_unpaged(
                format!(
                    "INSERT INTO {ks}.schema_lease (id, holder) VALUES (0, ?) IF NOT EXISTS USING TTL {LEASE_SECS}"
                ),
                (&me,),
            )
            .await
            .map_err(|e| format!("cql: {e}"))?;
        if super::applied(r).map_err(|e| e.to_string())? {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err("cql: another migrate holds the schema lease".into());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let result = apply_pending(&s, ks).await;
    let _ = s
        .query_unpaged(
            "DELETE FROM schema_lease WHERE id = 0 IF holder = ?",
            (&me,),
        )
        .await;
    result
}

async fn apply_pending(s: &Session, ks: &str) -> Result<Vec<String>, String> {
    let have = applied_version(s, ks).await?;
    let mut done = Vec::new();
    for (version, name, text) in MIGRATIONS {
        if *version <= have {
            continue;
        }
        for st in statements(text) {
            run(s, &in_keyspace(&st, ks)).await?;
        }
        s.query_unpaged(
            format!(
                "INSERT INTO {ks}.schema_migrations (version, name, applied_ms) VALUES (?, ?, ?)"
            ),
            (*version, *name, crate::ids::now_ms()),
        )
        .await
        .map_err(|e| format!("cql: {e}"))?;
        tracing::info!(version, name, "applied CQL migration");
        done.push(name.to_string());
    }
    Ok(done)
}

/// How long one schema statement may take: a node creating a table under load, then the
/// cluster agreeing on the new schema, takes far longer than a read or write.
const DDL_TIMEOUT: Duration = Duration::from_secs(60);

/// How often a schema statement that timed out is sent again. Each is `IF NOT EXISTS`, so a
/// statement the node applied after the client gave up is harmless the second time.
const DDL_ATTEMPTS: u32 = 3;

/// Runs one schema statement, with [`DDL_TIMEOUT`] and up to [`DDL_ATTEMPTS`] tries.
async fn run(s: &Session, cql: &str) -> Result<(), String> {
    let mut st = Statement::new(cql);
    st.set_request_timeout(Some(DDL_TIMEOUT));
    st.set_is_idempotent(true);
    let mut attempt = 1;
    loop {
        match s.query_unpaged(st.clone(), ()).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < DDL_ATTEMPTS && timed_out(&e) => {
                tracing::warn!(attempt, error = %e, "a schema statement timed out; sending it again");
                attempt += 1;
            }
            Err(e) => {
                return Err(format!(
                    "cql: {e} (in: {})",
                    cql.lines().next().unwrap_or("")
                ))
            }
        }
    }
}

/// Whether `e` says the statement ran out of time (the client's or a node's), not that it
/// was refused: only those are worth sending again.
fn timed_out(e: &ExecutionError) -> bool {
    match e {
        ExecutionError::RequestTimeout(_) => true,
        ExecutionError::LastAttemptError(RequestAttemptError::DbError(db, _)) => matches!(
            db,
            DbError::WriteTimeout { .. } | DbError::ReadTimeout { .. }
        ),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_files_split_into_statements() {
        let st = statements(MIGRATIONS[0].2);
        assert!(st.len() >= 10, "{st:?}");
        assert!(st
            .iter()
            .all(|s| s.starts_with("CREATE TABLE IF NOT EXISTS")));
        assert!(st.iter().all(|s| !s.contains(';')));
        assert!(in_keyspace(&st[0], "ks").starts_with("CREATE TABLE IF NOT EXISTS ks."));
    }
}
