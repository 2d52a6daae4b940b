//! How a session was signed in (RFC 8176 `amr` values) and the assurance level that follows
//! (`acr`, OpenID Connect Core §2). The one place that maps the one to the other, so the pages
//! that sign users in and the provider that reports it cannot disagree.

/// A way of signing in, as recorded on the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignInMethod {
    Password,
    /// A password, then a code from an authenticator app.
    PasswordAndTotp,
    /// A password, then a single-use recovery code.
    PasswordAndRecoveryCode,
    /// A passkey, user-verified (the ceremony requires it): possession and a PIN or biometric.
    Passkey,
}

impl SignInMethod {
    /// The RFC 8176 values, space-separated as the session stores them. A recovery code is
    /// neither `otp` nor a key, so it is reported as `mfa`.
    pub fn amr(self) -> &'static str {
        match self {
            Self::Password => "pwd",
            Self::PasswordAndTotp => "pwd otp",
            Self::PasswordAndRecoveryCode => "pwd mfa",
            Self::Passkey => "hwk user",
        }
    }
}

/// The authentication context classes this provider reports and honours in `acr_values`,
/// weakest first: a level satisfies a request for itself or any weaker one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Acr {
    Password,
    MultiFactor,
}

impl Acr {
    pub const ALL: [Acr; 2] = [Acr::Password, Acr::MultiFactor];

    pub fn uri(self) -> &'static str {
        match self {
            Self::Password => "urn:palisade:acr:password",
            Self::MultiFactor => "urn:palisade:acr:mfa",
        }
    }

    pub fn parse(uri: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.uri() == uri)
    }

    /// The level a session reached, from the `amr` values it recorded: a one-time code, a
    /// recovery code or a user-verified passkey makes it multi-factor.
    pub fn of(amr: &str) -> Self {
        if amr.split(' ').any(|m| ["otp", "mfa", "hwk"].contains(&m)) {
            Self::MultiFactor
        } else {
            Self::Password
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_maps_to_its_level_and_uris_round_trip() {
        let cases = [
            (SignInMethod::Password, Acr::Password),
            (SignInMethod::PasswordAndTotp, Acr::MultiFactor),
            (SignInMethod::PasswordAndRecoveryCode, Acr::MultiFactor),
            (SignInMethod::Passkey, Acr::MultiFactor),
        ];
        for (method, level) in cases {
            assert_eq!(Acr::of(method.amr()), level, "{method:?}");
        }
        for a in Acr::ALL {
            assert_eq!(Acr::parse(a.uri()), Some(a));
        }
        assert!(
            Acr::MultiFactor > Acr::Password,
            "multi-factor satisfies a password request"
        );
        assert_eq!(Acr::parse("urn:palisade:acr:gold"), None);
    }
}
