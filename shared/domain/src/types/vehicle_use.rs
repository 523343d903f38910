//! How a vehicle is mainly used, a rating factor: commuting, pleasure or business.

use serde::{Deserialize, Serialize};

/// Main use of a vehicle. Serialized lower-case: `commute`, `pleasure`, `business`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum VehicleUse {
    /// Driven to work or school.
    Commute,
    /// Personal use only.
    Pleasure,
    /// Used for business.
    Business,
}

/// Why a string is not a [`VehicleUse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VehicleUseError {
    /// Not one of the three uses.
    #[error("use must be one of commute, pleasure, business")]
    Unknown,
}

impl VehicleUse {
    /// Every use.
    pub const ALL: [VehicleUse; 3] = [
        VehicleUse::Commute,
        VehicleUse::Pleasure,
        VehicleUse::Business,
    ];

    /// Parses `commute`, `pleasure` or `business` in any case (surrounding whitespace ignored).
    pub fn parse(input: &str) -> Result<Self, VehicleUseError> {
        let s = input.trim();
        Self::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s))
            .ok_or(VehicleUseError::Unknown)
    }

    /// The lower-case name.
    pub fn as_str(&self) -> &'static str {
        match self {
            VehicleUse::Commute => "commute",
            VehicleUse::Pleasure => "pleasure",
            VehicleUse::Business => "business",
        }
    }
}

impl std::fmt::Display for VehicleUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VehicleUse {
    type Err = VehicleUseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_serde() {
        for u in VehicleUse::ALL {
            assert_eq!(VehicleUse::parse(u.as_str()), Ok(u));
            assert_eq!(serde_json::to_string(&u).unwrap(), format!("\"{u}\""));
        }
        assert_eq!(VehicleUse::parse(" Commute "), Ok(VehicleUse::Commute));
        assert_eq!(VehicleUse::parse("racing"), Err(VehicleUseError::Unknown));
        assert_eq!(
            serde_json::from_str::<VehicleUse>("\"business\"").unwrap(),
            VehicleUse::Business
        );
        assert!(serde_json::from_str::<VehicleUse>("\"Business\"").is_err());
    }
}
