//! One device: its signature key (generated here, never sent), the app's
//! certificate for it, the app's public identity, and its MLS state
//! (openmls's provider: key packages' private keys and every group).

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;
use sealcast_core::crypto::EnvelopeSigner;
use zeroize::Zeroizing;

use crate::identity::{AppIdentity, DeviceCertificate};
use crate::{CIPHERSUITE, GroupError};

/// A device's Ed25519 key: one key signs its MLS messages and its
/// envelopes (format v2). Generated on the device; only the public half
/// leaves it (to be certified by the app).
pub struct DeviceKey {
    seed: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl DeviceKey {
    /// A new key from the OS's randomness.
    pub fn generate() -> Result<DeviceKey, GroupError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        getrandom::fill(seed.as_mut()).map_err(|_| GroupError::Mls("no randomness".into()))?;
        Ok(DeviceKey::from_seed(seed))
    }

    /// The key of a stored seed (the app persists it; never the relay).
    pub fn from_seed(seed: Zeroizing<[u8; 32]>) -> DeviceKey {
        let public = EnvelopeSigner::from_seed(&seed).public_key();
        DeviceKey { seed, public }
    }

    /// The seed, for the app to persist in the device's secure storage.
    pub fn seed(&self) -> &[u8; 32] {
        &self.seed
    }

    /// The public key (what the app certifies).
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }
}

/// A device of an app user, with keys that never leave it.
pub struct Device {
    pub(crate) provider: OpenMlsRustCrypto,
    pub(crate) signer: SignatureKeyPair,
    pub(crate) envelope_signer: EnvelopeSigner,
    pub(crate) cert: DeviceCertificate,
    pub(crate) app: AppIdentity,
}

impl Device {
    /// A fresh device key; send its [`DeviceKey::public`] to the app to be
    /// certified, then [`Device::new`].
    pub fn generate_key() -> Result<DeviceKey, GroupError> {
        DeviceKey::generate()
    }

    /// The device, once the app certified `key`. Fails unless the
    /// certificate is the app's and names this key.
    pub fn new(key: DeviceKey, cert: DeviceCertificate, app: AppIdentity) -> Result<Self, GroupError> {
        cert.verify(&app)?;
        if cert.key() != key.public {
            return Err(GroupError::WrongKey);
        }
        let signer = SignatureKeyPair::from_raw(
            CIPHERSUITE.signature_algorithm(),
            key.seed.to_vec(),
            key.public.to_vec(),
        );
        let envelope_signer = EnvelopeSigner::from_seed(&key.seed);
        Ok(Self { provider: OpenMlsRustCrypto::default(), signer, envelope_signer, cert, app })
    }

    /// Signs this device's envelopes (format v2): what members check the
    /// sender of an envelope against.
    pub fn envelope_signer(&self) -> &EnvelopeSigner {
        &self.envelope_signer
    }

    /// This device's certificate.
    pub fn certificate(&self) -> &DeviceCertificate {
        &self.cert
    }

    /// The app's identity this device checks everything against.
    pub fn app(&self) -> &AppIdentity {
        &self.app
    }

    pub(crate) fn credential(&self) -> CredentialWithKey {
        CredentialWithKey {
            credential: BasicCredential::new(self.cert.encode()).into(),
            signature_key: self.signer.public().into(),
        }
    }

    /// A new key package for the relay's key directory (its private half
    /// stays in this device; each is used by one add).
    pub fn key_package(&self) -> Result<Vec<u8>, GroupError> {
        let bundle = KeyPackage::builder()
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
            .map_err(GroupError::mls)?;
        bundle.key_package().tls_serialize_detached().map_err(GroupError::mls)
    }

    /// A last-resort key package: handed out when the directory has no
    /// other package of this device, and usable for several adds.
    pub fn last_resort_key_package(&self) -> Result<Vec<u8>, GroupError> {
        // Its leaf must say it understands the last-resort extension, or
        // the package does not validate.
        let capabilities = Capabilities::builder().extensions(vec![ExtensionType::LastResort]).build();
        let bundle = KeyPackage::builder()
            .mark_as_last_resort()
            .leaf_node_capabilities(capabilities)
            .build(CIPHERSUITE, &self.provider, &self.signer, self.credential())
            .map_err(GroupError::mls)?;
        bundle.key_package().tls_serialize_detached().map_err(GroupError::mls)
    }

    /// Signs `message` with the device's key (Ed25519).
    pub(crate) fn sign(&self, message: &[u8]) -> Result<Vec<u8>, GroupError> {
        use openmls_traits::signatures::Signer as _;
        self.signer.sign(message).map_err(|e| GroupError::Mls(format!("signing: {e:?}")))
    }
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Device({}/{})", self.cert.user(), self.cert.device())
    }
}
