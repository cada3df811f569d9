//! The key directory: devices' MLS key packages, opaque to the relay
//! (docs/protocol.md, "Key directory"). A signed-in connection publishes
//! packages for its user's devices; anyone signed in to the app fetches
//! one of a device's packages, which is then gone (a package is for one
//! add), or the device's last-resort package, which stays.
//!
//! Every path is bounded by the app's `[apps.key_directory]` budgets
//! ([`KeyDirectoryConfig`]): bytes per package, packages per device,
//! devices per user, bytes per app, requests per connection. Stores
//! ([`DirectoryStore`]): [`MemoryDirectory`] on a single node (a restart
//! empties it; devices publish again when they connect, which the `count`
//! of every answer tells them to), [`RedisDirectory`] in cluster mode (one
//! directory for every node).

mod memory;
mod redis;

use std::fmt::Debug;
use std::sync::Arc;

use sealcast_core::protocol::directory::{
    self, DirectoryError, DirectoryErrorCode, Package, Publish, Request, Stored,
};

pub use memory::MemoryDirectory;
pub use redis::RedisDirectory;

/// The key directory's budgets for one app (devices' MLS key packages,
/// docs/protocol.md "Key directory").
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KeyDirectoryConfig {
    /// Largest package, bytes (an MLS key package with an Ed25519
    /// credential and a sealcast certificate is under 1 KiB as base64).
    pub max_package_bytes: usize,
    /// Packages kept per device, besides its last-resort one.
    pub max_packages_per_device: usize,
    /// Devices kept per user.
    pub max_devices_per_user: usize,
    /// Bytes kept for the app (each package counts its length plus 64).
    pub max_bytes: usize,
    /// Key directory requests per connection per second.
    pub requests_per_second: u32,
}

impl Default for KeyDirectoryConfig {
    fn default() -> Self {
        KeyDirectoryConfig {
            max_package_bytes: 4096,
            max_packages_per_device: 16,
            max_devices_per_user: 8,
            max_bytes: 64 << 20,
            requests_per_second: 10,
        }
    }
}

/// Bytes counted per kept package besides its own.
pub const PACKAGE_OVERHEAD_BYTES: usize = 64;

/// What a device has stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceState {
    /// Packages (not counting the last-resort one).
    pub count: usize,
    /// Whether it has a last-resort package.
    pub last_resort: bool,
}

/// Why a store refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryStoreError {
    /// Over the packages kept per device; the device's state is attached.
    #[error("more packages than the app keeps per device ({0} stored)")]
    TooManyPackages(usize),
    /// Over the devices kept per user.
    #[error("more devices than the app keeps per user")]
    TooManyDevices,
    /// Over the app's bytes.
    #[error("the app's key directory is full")]
    Quota,
    /// The backend failed; never holds package data.
    #[error("key directory store failed: {0}")]
    Backend(String),
}

/// A package a fetch took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The package.
    pub package: String,
    /// Whether it is the device's last-resort package (kept).
    pub last_resort: bool,
}

/// What a publish stores for one device.
#[derive(Debug, Clone, Copy)]
pub struct NewPackages<'a> {
    /// The signed-in user.
    pub user: &'a str,
    /// The user's device.
    pub device: &'a str,
    /// Packages to add after the stored ones.
    pub packages: &'a [String],
    /// A last-resort package replacing the stored one.
    pub last_resort: Option<&'a str>,
}

/// Where packages live. Each call is atomic: a publish stores all its
/// packages or none.
pub trait DirectoryStore: Send + Sync + Debug {
    /// Stores `new` within `limits`.
    fn publish(
        &self,
        app: &str,
        new: &NewPackages<'_>,
        limits: &KeyDirectoryConfig,
    ) -> Result<DeviceState, DirectoryStoreError>;

    /// Takes the device's oldest package, or else shows its last-resort one.
    fn fetch(&self, app: &str, user: &str, device: &str) -> Result<Option<Taken>, DirectoryStoreError>;

    /// Forgets the device and everything it stored.
    fn clear(&self, app: &str, user: &str, device: &str) -> Result<(), DirectoryStoreError>;

    /// Bytes kept for `app`.
    fn app_bytes(&self, app: &str) -> Result<usize, DirectoryStoreError>;
}

/// The directory of every app on this server.
#[derive(Debug, Clone)]
pub struct KeyDirectory {
    store: Arc<dyn DirectoryStore>,
}

impl KeyDirectory {
    /// The store for a single node, or Redis's in cluster mode.
    pub fn open(cluster: Option<&str>) -> Result<KeyDirectory, DirectoryStoreError> {
        let store: Arc<dyn DirectoryStore> = match cluster {
            Some(url) => Arc::new(RedisDirectory::open(url)?),
            None => Arc::new(MemoryDirectory::default()),
        };
        Ok(KeyDirectory { store })
    }

    /// A directory in memory (tests, fuzzing).
    pub fn in_memory() -> KeyDirectory {
        KeyDirectory { store: Arc::new(MemoryDirectory::default()) }
    }

    /// Answers `request` from signed-in `user` of `app`: the answer frame,
    /// or the refusal to send.
    pub fn handle(
        &self,
        app: &str,
        user: &str,
        request: &Request,
        limits: &KeyDirectoryConfig,
    ) -> Result<String, DirectoryError> {
        let request_id = request.request_id().map(str::to_owned);
        let refuse = |code, message: String| DirectoryError {
            request_id: request_id.clone(),
            request: request.event().to_owned(),
            code,
            message,
        };
        let stored = |device: &str, state: DeviceState| {
            directory::encode_stored(&Stored {
                request_id: request_id.clone(),
                device: device.to_owned(),
                count: state.count,
                last_resort: state.last_resort,
            })
        };
        let result = match request {
            Request::Publish(publish) => {
                check_sizes(publish, limits)
                    .map_err(|message| refuse(DirectoryErrorCode::TooLarge, message))?;
                let new = NewPackages {
                    user,
                    device: &publish.device,
                    packages: &publish.packages,
                    last_resort: publish.last_resort.as_deref(),
                };
                self.store.publish(app, &new, limits).map(|state| stored(&publish.device, state))
            }
            Request::Fetch(fetch) => self.store.fetch(app, &fetch.user, &fetch.device).map(|taken| {
                directory::encode_package(&Package {
                    request_id: request_id.clone(),
                    user: fetch.user.clone(),
                    device: fetch.device.clone(),
                    last_resort: taken.as_ref().is_some_and(|t| t.last_resort),
                    package: taken.map(|t| t.package),
                })
            }),
            Request::Clear(clear) => self
                .store
                .clear(app, user, &clear.device)
                .map(|()| stored(&clear.device, DeviceState { count: 0, last_resort: false })),
        };
        result.map_err(|err| {
            let code = match &err {
                DirectoryStoreError::TooManyPackages(_) | DirectoryStoreError::TooManyDevices => {
                    DirectoryErrorCode::TooMany
                }
                DirectoryStoreError::Quota => DirectoryErrorCode::Quota,
                DirectoryStoreError::Backend(_) => {
                    tracing::error!(error = %err, "key directory store failed");
                    DirectoryErrorCode::Storage
                }
            };
            refuse(code, err.to_string())
        })
    }

    /// Bytes kept for `app` (tests, operations).
    pub fn app_bytes(&self, app: &str) -> Result<usize, DirectoryStoreError> {
        self.store.app_bytes(app)
    }
}

/// The refusal of a request over the connection's rate.
pub fn rate_limited(request: &Request) -> DirectoryError {
    DirectoryError {
        request_id: request.request_id().map(str::to_owned),
        request: request.event().to_owned(),
        code: DirectoryErrorCode::RateLimited,
        message: "key directory request rate limit exceeded".to_owned(),
    }
}

fn check_sizes(publish: &Publish, limits: &KeyDirectoryConfig) -> Result<(), String> {
    let max = limits.max_package_bytes;
    if publish.packages.iter().chain(&publish.last_resort).any(|p| p.len() > max) {
        return Err(format!("a package is over the app's {max} bytes"));
    }
    Ok(())
}

/// What a package costs against the app's bytes.
fn cost(package: &str) -> usize {
    package.len() + PACKAGE_OVERHEAD_BYTES
}

#[cfg(test)]
mod tests;
