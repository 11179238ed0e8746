//! State enums stored as their variants' names.

/// For an enum of unit variants stored as the variant's name: `as_str`, `Display` and `FromStr`, where a
/// name the enum lacks is a `Corrupt` error that names `$what` (the column it was read from).
macro_rules! stored_enum {
    ($what:literal, $name:ident { $($variant:ident),+ $(,)? }) => {
        impl $name {
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => stringify!($variant),)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::StoreError;
            fn from_str(s: &str) -> crate::Result<Self> {
                match s {
                    $(stringify!($variant) => Ok($name::$variant),)+
                    other => Err(crate::StoreError::Corrupt(format!("{} `{other}`", $what))),
                }
            }
        }
    };
}

pub(crate) use stored_enum;
