//! Statuses kept in text columns, read back as Rust enums at the storage boundary: an unknown
//! value read from the database is an error that names it, never a silent `Failed`.
//!
//! A leaf: capabilities declare their enums with [`text_enum!`] and it imports nothing from
//! the worker.

/// A text column held a value its enum does not know (a newer writer, or a hand edit).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} '{value}' read from the database")]
pub struct UnknownValue {
    /// What the column holds, e.g. "asset status".
    pub kind: &'static str,
    pub value: String,
}

/// Declares a fieldless enum stored as text: `as_str`, `ALL`, `TryFrom<&str>` (an unknown
/// value is an [`UnknownValue`]), `Display`, and sqlx `Type`/`Decode` as PostgreSQL text, so
/// rows and scalars decode into it directly.
macro_rules! text_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $($(#[$variant_meta:meta])* $variant:ident = $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $($(#[$variant_meta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value as stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<&str> for $name {
            type Error = $crate::stored::UnknownValue;

            fn try_from(text: &str) -> Result<Self, $crate::stored::UnknownValue> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err($crate::stored::UnknownValue {
                        kind: $kind,
                        value: other.to_owned(),
                    }),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl sqlx::Type<sqlx::Postgres> for $name {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }

            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }

        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $name {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, sqlx::Postgres>>::decode(value)?;
                Ok(Self::try_from(text)?)
            }
        }
    };
}

pub(crate) use text_enum;

#[cfg(test)]
mod tests {
    text_enum! {
        enum Light("light") {
            Red = "red",
            Green = "green",
        }
    }

    #[test]
    fn every_value_round_trips_and_an_unknown_one_is_named() {
        for light in Light::ALL {
            assert_eq!(Light::try_from(light.as_str()), Ok(*light));
            assert_eq!(light.to_string(), light.as_str());
        }
        let error = Light::try_from("amber").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown light 'amber' read from the database"
        );
    }

    /// Every status the worker stores reads back as itself; an unknown one names its column.
    #[test]
    fn the_worker_statuses_round_trip() {
        macro_rules! round_trip {
            ($($kind:ty),+) => {$(
                for value in <$kind>::ALL {
                    assert_eq!(<$kind>::try_from(value.as_str()), Ok(*value));
                }
                assert!(<$kind>::try_from("no-such-value").is_err());
            )+};
        }
        round_trip!(
            crate::assets::Status,
            crate::assets::Stage,
            crate::collections::MigrationStatus,
            crate::chat::FinishReason,
            crate::chat::AnswerMode,
            crate::chat::conversations::MessageRole
        );
        let error = crate::assets::Status::try_from("archived").unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown asset status 'archived' read from the database"
        );
    }
}
