//! Ids, names and timestamps in Neon's formats.

use std::time::SystemTime;

use rand::Rng;

/// The role every project starts with, as on Neon.
pub const OWNER_ROLE: &str = "neondb_owner";
/// The database every project starts with, as on Neon.
pub const DEFAULT_DATABASE: &str = "neondb";

const ADJECTIVES: &[&str] = &[
    "misty", "cool", "quiet", "bold", "dawn", "empty", "fancy", "gentle", "hidden", "lively",
    "proud", "rapid",
];
const NOUNS: &[&str] = &[
    "truth", "rain", "sea", "forest", "river", "cloud", "meadow", "stone", "field", "bird", "leaf",
    "wind",
];

fn words() -> String {
    let mut rng = rand::rng();
    format!(
        "{}-{}",
        ADJECTIVES[rng.random_range(0..ADJECTIVES.len())],
        NOUNS[rng.random_range(0..NOUNS.len())]
    )
}

fn alnum(n: usize) -> String {
    const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..n)
        .map(|_| CHARS[rng.random_range(0..CHARS.len())] as char)
        .collect()
}

/// `word-word-12345678`
pub fn project_id() -> String {
    let mut rng = rand::rng();
    format!("{}-{:08}", words(), rng.random_range(0..100_000_000u32))
}

/// `br-word-word-xxxxxxxx`
pub fn branch_id() -> String {
    format!("br-{}-{}", words(), alnum(8))
}

/// `ep-word-word-xxxxxxxx`
pub fn endpoint_id() -> String {
    format!("ep-{}-{}", words(), alnum(8))
}

pub fn password() -> String {
    format!("npg_{}", alnum(16))
}

/// The real database behind a branch's database: short, unique, and an identifier we always
/// quote anyway.
pub fn real_database(name: &str) -> String {
    let clean: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(30)
        .collect();
    format!("nb_{}_{}", alnum(10), clean.to_lowercase())
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

pub fn rfc3339(at: SystemTime) -> String {
    humantime::format_rfc3339_seconds(at).to_string()
}
