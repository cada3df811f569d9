//! What the app vouches for, and how every member checks it: a device's
//! certificate (app user id + device id + the device's signature key,
//! signed by the app's identity key) and a channel's roster (which devices
//! of which users may be in the channel's group, signed by the same key,
//! with a serial so an old roster cannot come back).
//!
//! The relay holds neither the app's identity key nor any device key, so it
//! cannot mint a member. Only the app server holds an [`AppSigner`]; every
//! device holds the app's public [`AppIdentity`].

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};

use crate::wire::{Reader, Writer};
use crate::{GroupError, MAX_ID_BYTES, MAX_ROSTER_DEVICES};

const CERTIFICATE_DOMAIN: &[u8] = b"sealcast/device-certificate/v1";
const ROSTER_DOMAIN: &[u8] = b"sealcast/roster/v1";
const VERSION: u8 = 1;

/// The app's public identity key (Ed25519), which every member checks
/// certificates and rosters against.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct AppIdentity(VerifyingKey);

impl AppIdentity {
    /// The key from its 32 bytes as unpadded base64url (the JWK `x` of an
    /// `EdDSA` key, as apps configure for asymmetric channel auth).
    pub fn from_base64url(x: &str) -> Result<Self, GroupError> {
        let bytes = URL_SAFE_NO_PAD.decode(x).map_err(|_| GroupError::Malformed("app identity key"))?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| GroupError::Malformed("app identity key"))?;
        VerifyingKey::from_bytes(&bytes).map(Self).map_err(|_| GroupError::Malformed("app identity key"))
    }

    /// The key as unpadded base64url.
    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0.as_bytes())
    }

    fn verify(&self, message: &[u8], signature: &[u8; 64], what: &'static str) -> Result<(), GroupError> {
        self.0
            .verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| GroupError::BadSignature(what))
    }
}

impl std::fmt::Debug for AppIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AppIdentity({})", self.to_base64url())
    }
}

/// The app server's identity key: certifies devices and signs rosters.
/// Never on a device, never on the relay.
pub struct AppSigner(SigningKey);

impl AppSigner {
    /// The signer from its 32-byte Ed25519 seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public half, for devices.
    pub fn identity(&self) -> AppIdentity {
        AppIdentity(self.0.verifying_key())
    }

    /// Vouches that `device_key` (a device's MLS signature public key) is
    /// device `device` of app user `user`.
    pub fn certify(
        &self,
        user: &str,
        device: &str,
        device_key: &[u8],
    ) -> Result<DeviceCertificate, GroupError> {
        check_id(user)?;
        check_id(device)?;
        if device_key.is_empty() || device_key.len() > MAX_KEY_BYTES {
            return Err(GroupError::Malformed("device key"));
        }
        let mut cert = DeviceCertificate {
            user: user.to_owned(),
            device: device.to_owned(),
            key: device_key.to_vec(),
            signature: [0; 64],
        };
        cert.signature = self.0.sign(&cert.signed_bytes()).to_bytes();
        Ok(cert)
    }

    /// Signs `roster`.
    pub fn sign_roster(&self, roster: Roster) -> Result<SignedRoster, GroupError> {
        roster.check()?;
        let signature = self.0.sign(&roster.signed_bytes()).to_bytes();
        Ok(SignedRoster { roster, signature })
    }
}

/// The largest device signature key accepted (an Ed25519 key is 32 bytes,
/// a P-256 one 65).
const MAX_KEY_BYTES: usize = 133;

fn check_id(id: &str) -> Result<(), GroupError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES { Err(GroupError::Malformed("id")) } else { Ok(()) }
}

/// App user id + device id + the device's signature public key, vouched for
/// by the app. It is the identity inside the device's MLS credential, so
/// every member sees who each leaf of the group is.
#[derive(Clone, PartialEq, Eq)]
pub struct DeviceCertificate {
    user: String,
    device: String,
    key: Vec<u8>,
    signature: [u8; 64],
}

impl DeviceCertificate {
    /// The app user id.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The device id (unique within the user).
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The device's signature public key.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    fn signed_bytes(&self) -> Vec<u8> {
        Writer::new()
            .bytes(CERTIFICATE_DOMAIN)
            .bytes(self.user.as_bytes())
            .bytes(self.device.as_bytes())
            .bytes(&self.key)
            .finish()
    }

    /// Fails unless the app signed it.
    pub fn verify(&self, app: &AppIdentity) -> Result<(), GroupError> {
        app.verify(&self.signed_bytes(), &self.signature, "device certificate")
    }

    /// The certificate as bytes (the MLS credential's identity).
    pub fn encode(&self) -> Vec<u8> {
        Writer::new()
            .u8(VERSION)
            .bytes(self.user.as_bytes())
            .bytes(self.device.as_bytes())
            .bytes(&self.key)
            .bytes(&self.signature)
            .finish()
    }

    /// Reads a certificate (without checking its signature: [`Self::verify`]).
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        let mut r = Reader::new(bytes, "device certificate");
        if r.u8()? != VERSION {
            return Err(GroupError::Malformed("device certificate"));
        }
        let user = r.id()?;
        let device = r.id()?;
        let key = r.bytes(MAX_KEY_BYTES)?.to_vec();
        let signature = r.bytes(64)?.try_into().map_err(|_| GroupError::Malformed("device certificate"))?;
        r.end()?;
        Ok(Self { user, device, key, signature })
    }
}

impl std::fmt::Debug for DeviceCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DeviceCertificate({}/{})", self.user, self.device)
    }
}

/// Which devices of which users may be in a channel's group. The app raises
/// `serial` with every change; a member never goes back to a lower one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    /// The channel (its group).
    pub channel: String,
    /// Raised by the app with every change.
    pub serial: u64,
    /// User id → device ids.
    pub devices: BTreeMap<String, BTreeSet<String>>,
}

impl Roster {
    /// An empty roster for `channel` at `serial`.
    pub fn new(channel: &str, serial: u64) -> Self {
        Self { channel: channel.to_owned(), serial, devices: BTreeMap::new() }
    }

    /// Adds `device` of `user`.
    pub fn with(mut self, user: &str, device: &str) -> Self {
        self.devices.entry(user.to_owned()).or_default().insert(device.to_owned());
        self
    }

    /// Whether device `device` of `user` is listed.
    pub fn lists(&self, user: &str, device: &str) -> bool {
        self.devices.get(user).is_some_and(|d| d.contains(device))
    }

    /// Every (user, device) listed.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.devices.iter().flat_map(|(u, ds)| ds.iter().map(move |d| (u.as_str(), d.as_str())))
    }

    fn check(&self) -> Result<(), GroupError> {
        check_id(&self.channel)?;
        let mut count = 0;
        for (user, devices) in &self.devices {
            check_id(user)?;
            for device in devices {
                check_id(device)?;
                count += 1;
            }
        }
        if count > MAX_ROSTER_DEVICES {
            return Err(GroupError::Malformed("roster"));
        }
        Ok(())
    }

    fn write(&self, w: &mut Writer) {
        w.bytes(self.channel.as_bytes()).u64(self.serial);
        w.u32(self.devices.len() as u32);
        for (user, devices) in &self.devices {
            w.bytes(user.as_bytes()).u32(devices.len() as u32);
            for device in devices {
                w.bytes(device.as_bytes());
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, GroupError> {
        let channel = r.id()?;
        let serial = r.u64()?;
        let users = r.u32()? as usize;
        let mut roster = Self::new(&channel, serial);
        let mut count = 0;
        for _ in 0..users {
            let user = r.id()?;
            let n = r.u32()? as usize;
            count += n;
            if count > MAX_ROSTER_DEVICES {
                return Err(GroupError::Malformed("roster"));
            }
            let devices = roster.devices.entry(user).or_default();
            for _ in 0..n {
                devices.insert(r.id()?);
            }
        }
        Ok(roster)
    }

    fn signed_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(ROSTER_DOMAIN);
        self.write(&mut w);
        w.finish()
    }
}

/// A roster with the app's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRoster {
    roster: Roster,
    signature: [u8; 64],
}

impl SignedRoster {
    /// The roster (check [`Self::verify`] first).
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Fails unless the app signed it.
    pub fn verify(&self, app: &AppIdentity) -> Result<(), GroupError> {
        app.verify(&self.roster.signed_bytes(), &self.signature, "roster")
    }

    /// The signed roster as bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(VERSION);
        self.roster.write(&mut w);
        w.bytes(&self.signature);
        w.finish()
    }

    /// Reads a signed roster (without checking the signature).
    pub fn decode(bytes: &[u8]) -> Result<Self, GroupError> {
        let mut r = Reader::new(bytes, "roster");
        if r.u8()? != VERSION {
            return Err(GroupError::Malformed("roster"));
        }
        let roster = Roster::read(&mut r)?;
        let signature = r.bytes(64)?.try_into().map_err(|_| GroupError::Malformed("roster"))?;
        r.end()?;
        Ok(Self { roster, signature })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app() -> AppSigner {
        AppSigner::from_seed(&[9; 32])
    }

    #[test]
    fn certificates_round_trip_and_only_the_apps_signature_verifies() {
        let cert = app().certify("alice", "phone", &[1; 32]).unwrap();
        let decoded = DeviceCertificate::decode(&cert.encode()).unwrap();
        assert_eq!(decoded, cert);
        decoded.verify(&app().identity()).unwrap();
        let stranger = AppSigner::from_seed(&[8; 32]).identity();
        assert_eq!(decoded.verify(&stranger), Err(GroupError::BadSignature("device certificate")));
        // Any changed field breaks the signature.
        let mut other = cert.clone();
        other.device = "laptop".into();
        assert!(other.verify(&app().identity()).is_err());
        let mut other = cert.clone();
        other.key[0] ^= 1;
        assert!(other.verify(&app().identity()).is_err());
        let identity = AppIdentity::from_base64url(&app().identity().to_base64url()).unwrap();
        assert_eq!(identity, app().identity());
    }

    #[test]
    fn rosters_round_trip_and_a_changed_roster_does_not_verify() {
        let roster =
            Roster::new("private-room", 3).with("alice", "phone").with("alice", "laptop").with("bob", "tab");
        let signed = app().sign_roster(roster.clone()).unwrap();
        let decoded = SignedRoster::decode(&signed.encode()).unwrap();
        decoded.verify(&app().identity()).unwrap();
        assert!(decoded.roster().lists("alice", "laptop"));
        assert!(!decoded.roster().lists("bob", "phone"));
        assert_eq!(decoded.roster().iter().count(), 3);
        let mut forged = decoded.clone();
        forged.roster.serial = 4;
        assert!(forged.verify(&app().identity()).is_err());
        let mut forged = decoded;
        forged.roster.devices.entry("mallory".into()).or_default().insert("x".into());
        assert!(forged.verify(&app().identity()).is_err());
    }

    #[test]
    fn bad_bytes_are_typed_errors() {
        let cert = app().certify("alice", "phone", &[1; 32]).unwrap().encode();
        for cut in 0..cert.len() {
            assert!(DeviceCertificate::decode(&cert[..cut]).is_err());
        }
        let mut long = cert.clone();
        long.push(0);
        assert!(DeviceCertificate::decode(&long).is_err());
        assert!(app().certify("", "phone", &[1; 32]).is_err());
        assert!(app().certify("alice", &"d".repeat(MAX_ID_BYTES + 1), &[1; 32]).is_err());
        assert!(SignedRoster::decode(&[1, 0, 0]).is_err());
    }
}
