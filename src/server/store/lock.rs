//! One server per database file. Two servers on one SQLite file would each merge points into the
//! newest block it keeps in memory and overwrite the other's (points lost and duplicated), so the
//! first to open a file holds an advisory lock on `FILE.lock` for as long as its store is open, and
//! a second one is refused with the holder's process id. The kernel releases the lock when the
//! process ends, however it ends: a crash never leaves a database locked.

use super::StoreError;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// The lock on a database file, held until dropped.
#[derive(Debug)]
pub struct DatabaseLock {
    _file: File,
}

impl DatabaseLock {
    /// Takes the lock on `database`, or says who holds it.
    pub fn acquire(database: &Path) -> Result<DatabaseLock, StoreError> {
        let path = lock_path(database);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)?;
        match file.try_lock() {
            Ok(()) => {
                // The holder's process id, for the message a second server gets.
                file.set_len(0)?;
                writeln!(file, "{}", std::process::id())?;
                Ok(DatabaseLock { _file: file })
            }
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                // Best effort: the message is still right without the id.
                let _ = file.read_to_string(&mut holder);
                Err(StoreError::CannotOpen(format!(
                    "the database {} is in use by another Signalboard server (process {}, \
                     holding {}): stop it, or give this server another database",
                    database.display(),
                    holder.trim(),
                    path.display()
                )))
            }
            Err(TryLockError::Error(e)) => Err(e.into()),
        }
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(".lock");
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_one_database_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("signalboard.db");
        let first = DatabaseLock::acquire(&database).unwrap();
        let refused = DatabaseLock::acquire(&database).unwrap_err().to_string();
        assert!(
            refused.contains("in use by another Signalboard server"),
            "{refused}"
        );
        assert!(
            refused.contains(&database.display().to_string()),
            "{refused}"
        );
        assert!(
            refused.contains(&format!("process {}", std::process::id())),
            "{refused}"
        );
        drop(first);
        DatabaseLock::acquire(&database).unwrap();
    }
}
