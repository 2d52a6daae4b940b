//! The internal CA and workload identities (TLS-5): SPIFFE IDs, the authority that signs
//! X.509-SVIDs, and the verification of peers on mTLS connections.

mod authority;
mod peer;
mod spiffe;

pub use authority::{Authority, CaError, CertificateRequest, IssuedSvid, Validity, check_svid};
pub use peer::{AllowList, IdPattern, PeerCertificate, PeerVerifier};
pub use spiffe::{SpiffeId, SpiffeIdError, TrustDomain};

#[cfg(test)]
mod tests;
