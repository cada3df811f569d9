//! TLS on the listener: `wss://` and `https://` on the server's one port.
//!
//! The certificate chain and key come from PEM files (`tls_cert`,
//! `tls_key`). They are read once at start (a bad or mismatched pair stops
//! the start with one line), then again on SIGHUP and when either file
//! changes on disk. A reload swaps the pair behind rustls's certificate
//! resolver: connections already open keep the session they negotiated,
//! new handshakes present the new certificate, and a pair that does not
//! load is logged and the old one stays in use.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Where the listener's certificate chain and key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Why a certificate pair did not load (caused by: the operator's files).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or is not PEM.
    #[error("cannot read {path}: {why}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no PEM certificate in it")]
    NoCertificate(PathBuf),
    /// The key file holds no private key, or one rustls cannot use.
    #[error("{path}: {why}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        why: String,
    },
    /// The key is not the certificate's.
    #[error("{key} is not the private key of the certificate in {cert}")]
    Mismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the setup.
    #[error("TLS setup: {0}")]
    Setup(String),
}

impl TlsFiles {
    /// Reads and checks the pair: a chain, a key rustls can sign with, and
    /// the key belongs to the chain's first certificate.
    pub fn load(&self) -> Result<Arc<CertifiedKey>, TlsError> {
        let read = |path: &Path, why: String| TlsError::Read { path: path.into(), why };
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .map_err(|err| read(&self.cert, err.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|err| read(&self.cert, err.to_string()))?;
        if chain.is_empty() {
            return Err(TlsError::NoCertificate(self.cert.clone()));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key)
            .map_err(|err| TlsError::Key { path: self.key.clone(), why: err.to_string() })?;
        let signing = provider()
            .key_provider
            .load_private_key(key)
            .map_err(|err| TlsError::Key { path: self.key.clone(), why: err.to_string() })?;
        let certified = CertifiedKey::new(chain, signing);
        match certified.keys_match() {
            Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
                Ok(Arc::new(certified))
            }
            Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
                Err(TlsError::Mismatch { cert: self.cert.clone(), key: self.key.clone() })
            }
            Err(err) => Err(read(&self.cert, err.to_string())),
        }
    }

    /// When either file last changed (and how long it is), to notice an
    /// update on disk; `None` while one cannot be read.
    fn stamp(&self) -> Option<[(SystemTime, u64); 2]> {
        let of = |path: &Path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
        Some([of(&self.cert)?, of(&self.key)?])
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The listener's certificate: the pair in use, and where it came from.
/// Its resolver hands the current pair to every new handshake.
pub struct Certificates {
    files: TlsFiles,
    current: RwLock<Arc<CertifiedKey>>,
    stamp: Mutex<Option<[(SystemTime, u64); 2]>>,
}

impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Certificates").field("files", &self.files).finish_non_exhaustive()
    }
}

/// What a [`Certificates::reload`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The files were read and their pair is in use.
    Swapped,
    /// Only when changed: the files are as they were.
    Unchanged,
}

impl Certificates {
    /// Loads `files` (the start-up check: an error stops the server).
    pub fn load(files: TlsFiles) -> Result<Arc<Certificates>, TlsError> {
        let stamp = files.stamp();
        let current = files.load()?;
        Ok(Arc::new(Certificates { files, current: RwLock::new(current), stamp: Mutex::new(stamp) }))
    }

    /// Reads the files again (`only_if_changed`: when their modification
    /// time or size moved since the last load) and swaps the pair in. On
    /// an error the pair in use stays.
    pub fn reload(&self, only_if_changed: bool) -> Result<Reloaded, TlsError> {
        let stamp = self.files.stamp();
        let mut last = self.stamp.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if only_if_changed && (stamp.is_none() || stamp == *last) {
            // Missing files are most likely being replaced: look again later.
            return Ok(Reloaded::Unchanged);
        }
        // Remember the attempt either way, so a bad pair is reported once
        // per change, not every check.
        *last = stamp;
        let pair = self.files.load()?;
        *self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = pair;
        Ok(Reloaded::Swapped)
    }

    /// The rustls configuration of the listener: HTTP/1.1 (the WebSocket
    /// upgrade too), the current pair for every handshake.
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|err| TlsError::Setup(err.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Reloads, and logs the outcome (SIGHUP and the file watch).
    pub fn reload_and_log(&self, only_if_changed: bool) {
        match self.reload(only_if_changed) {
            Ok(Reloaded::Swapped) => {
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded")
            }
            Ok(Reloaded::Unchanged) => {}
            Err(err) => {
                tracing::error!(error = %err, "TLS certificate not reloaded: the previous one stays in use")
            }
        }
    }
}

impl ResolvesServerCert for Certificates {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> TlsFiles {
        let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
        files
    }

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sealcast-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn unreadable_empty_and_garbage_files_are_clear_errors() {
        let dir = dir("bad");
        let missing = TlsFiles { cert: dir.join("none.crt"), key: dir.join("none.key") };
        assert!(matches!(missing.load(), Err(TlsError::Read { .. })), "{:?}", missing.load().err());
        let empty = write_pair(&dir, "empty", "", "");
        assert!(matches!(empty.load(), Err(TlsError::NoCertificate(_))));
        let garbage = write_pair(
            &dir,
            "garbage",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "not a key",
        );
        assert!(matches!(garbage.load(), Err(TlsError::Key { .. })), "{:?}", garbage.load().err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn generated() -> (String, String) {
        let pair = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (pair.cert.pem(), pair.signing_key.serialize_pem())
    }

    fn presented(certificates: &Certificates) -> Vec<u8> {
        certificates.current.read().unwrap().cert[0].to_vec()
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = dir("mismatch");
        let ((cert_a, _), (_, key_b)) = (generated(), generated());
        let files = write_pair(&dir, "mixed", &cert_a, &key_b);
        assert!(matches!(files.load(), Err(TlsError::Mismatch { .. })), "{:?}", files.load().err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn reload_swaps_a_good_pair_and_keeps_the_old_one_on_a_bad_pair() {
        let dir = dir("reload");
        let (cert_a, key_a) = generated();
        let files = write_pair(&dir, "live", &cert_a, &key_a);
        let certificates = Certificates::load(files.clone()).unwrap();
        let first = presented(&certificates);
        assert_eq!(certificates.reload(true).unwrap(), Reloaded::Unchanged);

        let (cert_b, key_b) = generated();
        write_pair(&dir, "live", &cert_b, &key_b);
        // A later modification time, whatever the file system's resolution.
        let later = SystemTime::now() + std::time::Duration::from_secs(5);
        std::fs::File::options().write(true).open(&files.cert).unwrap().set_modified(later).unwrap();
        assert_eq!(certificates.reload(true).unwrap(), Reloaded::Swapped);
        let second = presented(&certificates);
        assert_ne!(first, second);

        // Half-written: the new certificate with the old key.
        write_pair(&dir, "live", &cert_a, &key_b);
        assert!(matches!(certificates.reload(false), Err(TlsError::Mismatch { .. })));
        assert_eq!(presented(&certificates), second, "the pair in use stays");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
