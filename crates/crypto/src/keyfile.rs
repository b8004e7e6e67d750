//! Key files: read with a size and permission check, created at most once.
//!
//! Creation writes a temporary file with mode 0600 in the target directory,
//! fsyncs it, then hard-links it to the final name. A hard link, unlike a
//! rename, fails when the target already exists, so two processes starting
//! at the same time on an empty directory cannot each keep a different key:
//! the loser discards its key and loads the winner's.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use rand::rngs::OsRng;
use rand::RngCore as _;
use zeroize::Zeroizing;

use crate::CryptoError;

fn io_error(path: &Path, action: &'static str, source: io::Error) -> CryptoError {
    CryptoError::Io {
        path: path.to_path_buf(),
        action,
        source,
    }
}

fn key_file_error(path: &Path, reason: impl Into<String>) -> CryptoError {
    CryptoError::KeyFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Loads the key at `path`, or creates it with `generate` when there is none.
///
/// `parse` turns the file's bytes into the key or says why it cannot;
/// `generate` returns a new key and the exact bytes to store for it.
pub(crate) fn load_or_create<T>(
    path: &Path,
    max_len_bytes: u64,
    parse: impl Fn(&[u8]) -> Result<T, String>,
    generate: impl FnOnce() -> Result<(T, Zeroizing<Vec<u8>>), CryptoError>,
) -> Result<T, CryptoError> {
    if let Some(bytes) = read_key_file(path, max_len_bytes)? {
        return parse(&bytes).map_err(|reason| key_file_error(path, reason));
    }
    let (key, encoded) = generate()?;
    if create_once(path, &encoded)? {
        return Ok(key);
    }
    // Another process created the file between our read and our link.
    let bytes = read_key_file(path, max_len_bytes)?
        .ok_or_else(|| key_file_error(path, "vanished right after it was created"))?;
    parse(&bytes).map_err(|reason| key_file_error(path, reason))
}

/// The file's bytes, or `None` if it does not exist.
///
/// Refuses files larger than `max_len_bytes` (a key file that big is not a
/// key file) and, on Unix, files that group or others may access.
fn read_key_file(
    path: &Path,
    max_len_bytes: u64,
) -> Result<Option<Zeroizing<Vec<u8>>>, CryptoError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(io_error(path, "open", err)),
    };
    let metadata = file
        .metadata()
        .map_err(|err| io_error(path, "read metadata of", err))?;
    if !metadata.is_file() {
        return Err(key_file_error(path, "is not a regular file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(key_file_error(
                path,
                format!("has mode {mode:o}; expected 600 (owner only): run chmod 600 on it"),
            ));
        }
    }
    if metadata.len() > max_len_bytes {
        return Err(key_file_error(
            path,
            format!(
                "is {} bytes; a key file is at most {max_len_bytes} bytes",
                metadata.len()
            ),
        ));
    }
    let mut bytes = Zeroizing::new(Vec::new());
    // Read one byte past the limit so a file that grew after the metadata
    // check is still refused rather than silently truncated.
    file.take(max_len_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|err| io_error(path, "read", err))?;
    if bytes.len() as u64 > max_len_bytes {
        return Err(key_file_error(
            path,
            format!("is larger than {max_len_bytes} bytes"),
        ));
    }
    Ok(Some(bytes))
}

/// Creates `path` holding `contents`, mode 0600, unless it already exists.
/// Returns whether this call created it.
fn create_once(path: &Path, contents: &[u8]) -> Result<bool, CryptoError> {
    let file_name = path
        .file_name()
        .ok_or_else(|| key_file_error(path, "has no file name"))?;
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;

    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(file_name);
    temp_name.push(format!(
        ".{}.{:016x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let temp_path = dir.join(temp_name);

    let result =
        write_private(&temp_path, contents).and_then(|()| match fs::hard_link(&temp_path, path) {
            Ok(()) => Ok(true),
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(err) => Err(io_error(path, "link new key file to", err)),
        });
    // The temporary name holds key material too: removing it is not optional.
    let removed = fs::remove_file(&temp_path);
    let created = result?;
    removed.map_err(|err| io_error(&temp_path, "remove temporary key file", err))?;
    if created {
        sync_dir(&dir)?;
    }
    Ok(created)
}

fn create_private_dir(dir: &Path) -> Result<(), CryptoError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|err| io_error(dir, "create directory", err))
}

fn write_private(path: &Path, contents: &[u8]) -> Result<(), CryptoError> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .map_err(|err| io_error(path, "create", err))?;
    file.write_all(contents)
        .map_err(|err| io_error(path, "write", err))?;
    file.sync_all().map_err(|err| io_error(path, "fsync", err))
}

/// Makes the new directory entry durable, so a crash right after start-up
/// cannot lose a key whose signatures were already handed out.
fn sync_dir(dir: &Path) -> Result<(), CryptoError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|err| io_error(dir, "fsync directory", err))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}
