//! Enums with fixed text spellings: the mechanism a door uses to name core values in its
//! wire format (each door keeps its own tables beside its wire types).

/// An enum with fixed wire spellings.
pub trait WireEnum: Sized + Copy + PartialEq + 'static {
    /// Every value with its spelling.
    const TABLE: &'static [(&'static str, Self)];

    /// The value spelled exactly `text`.
    fn parse(text: &str) -> Option<Self> {
        Self::TABLE
            .iter()
            .find(|(n, _)| *n == text)
            .map(|(_, v)| *v)
    }
    /// The spelling of a value.
    fn name(self) -> &'static str {
        Self::TABLE
            .iter()
            .find(|(_, v)| *v == self)
            .map(|(n, _)| *n)
            .expect("every value is in its table")
    }
    /// Every spelling.
    fn names() -> Vec<&'static str> {
        Self::TABLE.iter().map(|(n, _)| *n).collect()
    }
}

/// Gives an enum its spellings: `wire_enum!(Type { "NAME" => Type::Value, ... })`.
#[macro_export]
macro_rules! wire_enum {
    ($t:ty { $($name:literal => $v:expr),+ $(,)? }) => {
        impl $crate::spelling::WireEnum for $t {
            const TABLE: &'static [(&'static str, Self)] = &[$(($name, $v)),+];
        }
    };
}
