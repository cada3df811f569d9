//! One device: its signature key (generated here, never sent), the app's
//! certificate for it, the app's public identity, and its MLS state
//! (openmls's provider: key packages' private keys and every group).

use openmls::prelude::tls_codec::Serialize as _;
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

use crate::identity::{AppIdentity, DeviceCertificate};
use crate::{CIPHERSUITE, GroupError};

/// A device of an app user, with keys that never leave it.
pub struct Device {
    pub(crate) provider: OpenMlsRustCrypto,
    pub(crate) signer: SignatureKeyPair,
    pub(crate) cert: DeviceCertificate,
    pub(crate) app: AppIdentity,
}

impl Device {
    /// A fresh signature key pair; send [`Device::public_key`] of the result
    /// to the app to be certified, then [`Device::new`].
    pub fn generate_key() -> Result<SignatureKeyPair, GroupError> {
        SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(GroupError::mls)
    }

    /// The device, once the app certified `signer`'s public key. Fails unless
    /// the certificate is the app's and names this key.
    pub fn new(
        signer: SignatureKeyPair,
        cert: DeviceCertificate,
        app: AppIdentity,
    ) -> Result<Self, GroupError> {
        cert.verify(&app)?;
        if cert.key() != signer.public() {
            return Err(GroupError::WrongKey);
        }
        Ok(Self { provider: OpenMlsRustCrypto::default(), signer, cert, app })
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
