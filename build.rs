// The sqlx::migrate! macro embeds migrations/ at compile time: rebuild when a
// migration is added or changed, or the binary would carry an older schema.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
