// `sqlx::migrate!` embeds the migration files at compile time, but cargo does not know the crate reads
// them: without this, a new migration is left out of the build until some Rust file changes.
fn main() {
    println!("cargo:rerun-if-changed=src/server/store/sqlite/migrations");
    println!("cargo:rerun-if-changed=src/server/store/postgres/migrations");
}
