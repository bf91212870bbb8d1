//! The SQLite database file `rms serve` and the ops commands' `--local` use: what is wrong with a
//! path, said before SQLite says it less clearly ("unable to open database file", "file is not a
//! database").

use std::io::Read;
use std::path::Path;

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// Whether a database may be opened at `path`: `create` (rms serve) allows a new file in an
/// existing folder; without it (the ops commands) the file must exist.
pub fn check(path: &Path, create: bool) -> Result<(), String> {
    let shown = path.display();
    if path.is_dir() {
        return Err(format!(
            "{shown} is a folder, not a database file: give a file name, e.g. {}",
            path.join("rms.db").display()
        ));
    }
    if !path.exists() {
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(format!(
                "the folder {} of the database {shown} does not exist: create it (mkdir -p {}) \
                 or give another path",
                folder.display(),
                folder.display()
            ));
        }
        if create {
            return Ok(());
        }
        return Err(format!(
            "{shown}: no such database; give the file `rms serve` uses (e.g. --local rms.db, or \
             rms-demo.db for `rms serve --demo`)"
        ));
    }
    let mut header = Vec::with_capacity(SQLITE_HEADER.len());
    std::fs::File::open(path)
        .and_then(|f| f.take(SQLITE_HEADER.len() as u64).read_to_end(&mut header))
        .map_err(|e| format!("cannot read {shown}: {e}"))?;
    // An empty file is a database SQLite has not written to yet.
    if !header.is_empty() && header != SQLITE_HEADER {
        return Err(format!(
            "{shown} is not an SQLite database: give the file `rms serve` uses, or a new name \
             for a new database"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("rms-db-check-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn each_unusable_path_is_named_with_what_to_do() {
        let dir = scratch("paths");
        let missing_folder = dir.join("no/such/folder/rms.db");
        let message = check(&missing_folder, true).unwrap_err();
        assert!(
            message.contains("does not exist") && message.contains("mkdir -p"),
            "{message}"
        );
        assert!(check(&dir, true).unwrap_err().contains("is a folder"));
        let text = dir.join("notes.txt");
        std::fs::write(&text, "hello, not a database").unwrap();
        assert!(check(&text, true)
            .unwrap_err()
            .contains("is not an SQLite database"));
        let new = dir.join("new.db");
        assert_eq!(check(&new, true), Ok(()));
        assert!(check(&new, false).unwrap_err().contains("no such database"));
        std::fs::write(&new, b"").unwrap();
        assert_eq!(
            check(&new, false),
            Ok(()),
            "an empty file is a new database"
        );
        let mut real = SQLITE_HEADER.to_vec();
        real.extend([0u8; 84]);
        std::fs::write(&new, real).unwrap();
        assert_eq!(check(&new, false), Ok(()));
    }
}
