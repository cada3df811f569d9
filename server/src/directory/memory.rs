//! [`MemoryDirectory`]: the key directory of a single node, in memory.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use super::{DeviceState, DirectoryStore, DirectoryStoreError, KeyDirectoryConfig, NewPackages, Taken, cost};

/// Packages by app, user and device.
#[derive(Debug, Default)]
pub struct MemoryDirectory {
    apps: Mutex<HashMap<String, AppPackages>>,
}

#[derive(Debug, Default)]
struct AppPackages {
    bytes: usize,
    users: HashMap<String, HashMap<String, DevicePackages>>,
}

#[derive(Debug, Default)]
struct DevicePackages {
    packages: VecDeque<String>,
    last_resort: Option<String>,
}

impl DevicePackages {
    fn state(&self) -> DeviceState {
        DeviceState { count: self.packages.len(), last_resort: self.last_resort.is_some() }
    }

    fn bytes(&self) -> usize {
        self.packages.iter().chain(&self.last_resort).map(|p| cost(p)).sum()
    }
}

impl MemoryDirectory {
    fn with_app<T>(&self, app: &str, f: impl FnOnce(&mut AppPackages) -> T) -> T {
        let mut apps = self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(apps.entry(app.to_owned()).or_default())
    }
}

impl DirectoryStore for MemoryDirectory {
    fn publish(
        &self,
        app: &str,
        new: &NewPackages<'_>,
        limits: &KeyDirectoryConfig,
    ) -> Result<DeviceState, DirectoryStoreError> {
        let NewPackages { user, device, packages, last_resort } = *new;
        self.with_app(app, |app| {
            let devices = app.users.get(user);
            let existing = devices.and_then(|d| d.get(device));
            let count = existing.map_or(0, |d| d.packages.len());
            if count + packages.len() > limits.max_packages_per_device {
                return Err(DirectoryStoreError::TooManyPackages(count));
            }
            let adds_device = existing.is_none() && (!packages.is_empty() || last_resort.is_some());
            if adds_device && devices.map_or(0, |d| d.len()) >= limits.max_devices_per_user {
                return Err(DirectoryStoreError::TooManyDevices);
            }
            let replaced = match last_resort {
                Some(_) => existing.and_then(|d| d.last_resort.as_deref()).map_or(0, cost),
                None => 0,
            };
            let added = packages.iter().map(|p| cost(p)).sum::<usize>() + last_resort.map_or(0, cost);
            let after = app.bytes + added - replaced;
            if after > app.bytes && after > limits.max_bytes {
                return Err(DirectoryStoreError::Quota);
            }
            if !adds_device && existing.is_none() {
                return Ok(DeviceState { count: 0, last_resort: false });
            }
            app.bytes = after;
            let entry = app.users.entry(user.to_owned()).or_default().entry(device.to_owned()).or_default();
            entry.packages.extend(packages.iter().cloned());
            if let Some(p) = last_resort {
                entry.last_resort = Some(p.to_owned());
            }
            Ok(entry.state())
        })
    }

    fn fetch(&self, app: &str, user: &str, device: &str) -> Result<Option<Taken>, DirectoryStoreError> {
        self.with_app(app, |app| {
            let Some(entry) = app.users.get_mut(user).and_then(|d| d.get_mut(device)) else {
                return Ok(None);
            };
            if let Some(package) = entry.packages.pop_front() {
                app.bytes -= cost(&package);
                return Ok(Some(Taken { package, last_resort: false }));
            }
            Ok(entry.last_resort.clone().map(|package| Taken { package, last_resort: true }))
        })
    }

    fn clear(&self, app: &str, user: &str, device: &str) -> Result<(), DirectoryStoreError> {
        self.with_app(app, |app| {
            let Some(devices) = app.users.get_mut(user) else { return Ok(()) };
            if let Some(entry) = devices.remove(device) {
                app.bytes -= entry.bytes();
            }
            if devices.is_empty() {
                app.users.remove(user);
            }
            Ok(())
        })
    }

    fn app_bytes(&self, app: &str) -> Result<usize, DirectoryStoreError> {
        Ok(self.with_app(app, |app| app.bytes))
    }
}
