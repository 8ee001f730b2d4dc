//! The two SQL backends under the store: SQLite (bundled, the default) and PostgreSQL (for a
//! Local API that many agents share). Statements are written once with `?N` placeholders (turned
//! into `$N` for PostgreSQL); the few dialect differences are asked of [`Conn::pg`]. Parameters
//! are [`Val`]s and rows are read through [`Row`], so the store's queries never see which
//! database they run on. Transactions are plain `BEGIN`/`COMMIT` on the one connection.
use std::borrow::Cow;

use super::{Result, StoreError};

/// A statement parameter.
#[derive(Clone, Debug, PartialEq)]
pub enum Val {
    /// NULL.
    Null,
    /// An integer (BIGINT on PostgreSQL).
    Int(i64),
    /// Text.
    Text(String),
    /// Bytes (BLOB / BYTEA).
    Blob(Vec<u8>),
}

impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::Int(v)
    }
}
impl From<bool> for Val {
    fn from(v: bool) -> Val {
        Val::Int(i64::from(v))
    }
}
impl From<&str> for Val {
    fn from(v: &str) -> Val {
        Val::Text(v.to_owned())
    }
}
impl From<String> for Val {
    fn from(v: String) -> Val {
        Val::Text(v)
    }
}
impl From<&String> for Val {
    fn from(v: &String) -> Val {
        Val::Text(v.clone())
    }
}
impl From<Vec<u8>> for Val {
    fn from(v: Vec<u8>) -> Val {
        Val::Blob(v)
    }
}
impl<T: Into<Val>> From<Option<T>> for Val {
    fn from(v: Option<T>) -> Val {
        v.map_or(Val::Null, Into::into)
    }
}

impl rusqlite::ToSql for Val {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match self {
            Val::Null => ToSqlOutput::Borrowed(ValueRef::Null),
            Val::Int(i) => ToSqlOutput::Borrowed(ValueRef::Integer(*i)),
            Val::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Val::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

impl postgres::types::ToSql for Val {
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match self {
            Val::Null => Ok(postgres::types::IsNull::Yes),
            // Numbers go in the width the statement wants (`length()` is an INTEGER, ids BIGINT).
            Val::Int(i) if *ty == postgres::types::Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
            Val::Int(i) if *ty == postgres::types::Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
            Val::Int(i) if *ty == postgres::types::Type::BOOL => (*i != 0).to_sql(ty, out),
            Val::Int(i) => i.to_sql(ty, out),
            Val::Text(s) => s.to_sql(ty, out),
            Val::Blob(b) => b.to_sql(ty, out),
        }
    }
    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }
    postgres::types::to_sql_checked!();
}

/// A result row.
pub enum Row<'a> {
    /// SQLite.
    Lite(&'a rusqlite::Row<'a>),
    /// PostgreSQL.
    Pg(&'a postgres::Row),
}

impl Row<'_> {
    /// An integer column.
    ///
    /// # Errors
    /// Type mismatches.
    pub fn int(&self, i: usize) -> Result<i64> {
        Ok(match self {
            Row::Lite(r) => r.get(i)?,
            Row::Pg(r) => r.try_get(i)?,
        })
    }
    /// A nullable integer column.
    ///
    /// # Errors
    /// Type mismatches.
    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        Ok(match self {
            Row::Lite(r) => r.get(i)?,
            Row::Pg(r) => r.try_get(i)?,
        })
    }
    /// A text column.
    ///
    /// # Errors
    /// Type mismatches.
    pub fn text(&self, i: usize) -> Result<String> {
        Ok(match self {
            Row::Lite(r) => r.get(i)?,
            Row::Pg(r) => r.try_get(i)?,
        })
    }
    /// A 0/1 column.
    ///
    /// # Errors
    /// Type mismatches.
    pub fn flag(&self, i: usize) -> Result<bool> {
        self.int(i).map(|v| v != 0)
    }
}

/// One database connection.
pub enum Conn {
    /// SQLite.
    Lite(rusqlite::Connection),
    /// PostgreSQL.
    Pg(Box<postgres::Client>),
}

/// `?N` → `$N` (statements never hold `?` in literals).
fn dollars(sql: &str) -> String {
    sql.replace('?', "$")
}

impl Conn {
    /// True on PostgreSQL.
    #[must_use]
    pub fn pg(&self) -> bool {
        matches!(self, Conn::Pg(_))
    }

    fn text<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        if self.pg() { Cow::Owned(dollars(sql)) } else { Cow::Borrowed(sql) }
    }

    /// Runs statements without parameters.
    ///
    /// # Errors
    /// Database errors.
    pub fn batch(&mut self, sql: &str) -> Result<()> {
        match self {
            Conn::Lite(c) => c.execute_batch(sql)?,
            Conn::Pg(c) => c.batch_execute(sql)?,
        }
        Ok(())
    }

    /// Runs one statement; returns the rows changed.
    ///
    /// # Errors
    /// Database errors.
    pub fn exec(&mut self, sql: &str, ps: &[Val]) -> Result<u64> {
        let sql = self.text(sql).into_owned();
        Ok(match self {
            Conn::Lite(c) => c.prepare_cached(&sql)?.execute(rusqlite::params_from_iter(ps.iter()))? as u64,
            Conn::Pg(c) => {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = ps.iter().map(|v| v as _).collect();
                c.execute(sql.as_str(), &refs)?
            }
        })
    }

    /// Calls `f` on each row as it comes (nothing is collected).
    ///
    /// # Errors
    /// Database errors, or `f`'s.
    pub fn each(&mut self, sql: &str, ps: &[Val], mut f: impl FnMut(&Row<'_>) -> Result<()>) -> Result<()> {
        let sql = self.text(sql).into_owned();
        match self {
            Conn::Lite(c) => {
                let mut st = c.prepare_cached(&sql)?;
                let mut rows = st.query(rusqlite::params_from_iter(ps.iter()))?;
                while let Some(r) = rows.next()? {
                    f(&Row::Lite(r))?;
                }
            }
            Conn::Pg(c) => {
                use postgres::fallible_iterator::FallibleIterator;
                let mut it = c.query_raw(sql.as_str(), ps.iter())?;
                while let Some(r) = it.next()? {
                    f(&Row::Pg(&r))?;
                }
            }
        }
        Ok(())
    }

    /// Every row, mapped.
    ///
    /// # Errors
    /// Database errors, or `f`'s.
    pub fn all<T>(&mut self, sql: &str, ps: &[Val], mut f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Vec<T>> {
        let mut out = Vec::new();
        self.each(sql, ps, |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, mapped.
    ///
    /// # Errors
    /// Database errors, or `f`'s.
    pub fn one<T>(&mut self, sql: &str, ps: &[Val], f: impl FnMut(&Row<'_>) -> Result<T>) -> Result<Option<T>> {
        Ok(self.all(sql, ps, f)?.into_iter().next())
    }

    /// Runs `f` in a transaction: committed if it succeeds, rolled back otherwise.
    ///
    /// # Errors
    /// `f`'s, or the commit's.
    pub fn tx<T>(&mut self, f: impl FnOnce(&mut Conn) -> Result<T>) -> Result<T> {
        self.batch("BEGIN")?;
        match f(self) {
            Ok(v) => {
                self.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.batch("ROLLBACK");
                Err(e)
            }
        }
    }
}

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> StoreError {
        // The server's own message says what went wrong ("db error" alone does not).
        StoreError::Pg(match e.as_db_error() {
            Some(d) => format!("{}: {}", d.code().code(), d.message()),
            None => e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders() {
        assert_eq!(super::dollars("a = ?1 AND b IN (?2, ?10)"), "a = $1 AND b IN ($2, $10)");
    }
}
